/* oO: one tip. Tap = done (todo) or acknowledge (advice); hold, right-click, M,
   Shift+F10 or the menu key = save / snooze / dismiss. Live updates by server-sent
   events, "seen" with its dwell time, Web Push subscription after a click, and a
   queue (IndexedDB) for reactions made offline. No framework, no inline code (CSP). */
'use strict';
(() => {
  const d = document, w = window, nav = navigator;
  const $ = (id) => d.getElementById(id);
  const meta = (name) => (d.querySelector(`meta[name="${name}"]`) || {}).content || '';
  const csrf = meta('csrf-token');
  const el = {
    stage: $('stage'), tip: $('tip'), kind: $('tip-kind'), title: $('tip-title'), body: $('tip-body'),
    hint: $('tip-hint'), empty: $('empty'), open: $('open'), say: $('say'), announce: $('announce'),
    notify: $('notify'), menu: $('menu'), why: $('why'), whyButton: $('why-button'),
  };
  const LABEL = { todo: 'to do', advice: 'advice' };
  const HINT = { todo: 'Tap when done \u00b7 hold for more', advice: 'Tap to acknowledge \u00b7 hold for more' };
  const SAID = { done: 'Done.', ack: 'Noted.', save: 'Saved for later.', dismiss: 'Dismissed.' };
  const HOLD_MS = 500, MOVE_PX = 10, SEEN_AFTER_MS = 2000, SEEN_MIN_MS = 300;
  const answered = new Set(), seenSent = new Set();
  let tip = readTip();

  // --- the tip on screen ----------------------------------------------------------

  function readTip() {
    const ds = el.tip.dataset;
    if (el.tip.hidden || !ds.decisionId) return null;
    return { decision_id: ds.decisionId, tip_id: ds.tipId, kind: ds.kind, title: el.title.textContent,
      body: el.body.textContent, deep_link: el.open.getAttribute('href'), expires_at: ds.expiresAt || null,
      reason: el.why.textContent || null };
  }

  function safeLink(url) {
    try {
      const u = new URL(url);
      return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
    } catch (_) { return null; }
  }

  function fill(t) {
    el.tip.hidden = !t;
    el.empty.hidden = !!t;
    const link = t && t.deep_link ? safeLink(t.deep_link) : null;
    el.open.hidden = !link;
    if (link) el.open.href = link; else el.open.removeAttribute('href');
    if (!t) {
      delete el.tip.dataset.decisionId;
      if (d.activeElement === el.tip) el.stage.focus({ preventScroll: true });
      return;
    }
    const ds = el.tip.dataset;
    ds.decisionId = t.decision_id; ds.tipId = t.tip_id || ''; ds.kind = t.kind || '';
    ds.expiresAt = t.expires_at || '';
    el.kind.className = LABEL[t.kind] ? `kind kind-${t.kind}` : 'kind';
    el.kind.textContent = LABEL[t.kind] || t.kind || '';
    el.title.textContent = t.title || '';
    el.body.textContent = t.body || '';
    el.body.hidden = !t.body;
    el.hint.textContent = HINT[t.kind] || HINT.advice;
    el.why.textContent = t.reason || 'No reason was recorded for this tip.';
  }

  /** Show `t` (a tip from the API, or null). A tip this page already answered stays gone. */
  function show(t) {
    if (t && answered.has(t.decision_id)) t = null;
    const same = tip && t && tip.decision_id === t.decision_id;
    if (!tip && !t) return;
    if (!same) { closeMenu(); leaveDwell(); }
    tip = t;
    fill(t);
    if (same || !t) return;
    el.tip.classList.remove('in');
    void el.tip.offsetWidth; // restart the fade-in
    el.tip.classList.add('in');
    el.announce.textContent = `New ${LABEL[t.kind] || 'tip'}: ${t.title}`;
    startDwell();
  }

  let sayTimer = 0;
  function say(text) {
    el.say.textContent = text;
    clearTimeout(sayTimer);
    sayTimer = setTimeout(() => { el.say.textContent = ''; }, 4000);
  }

  // --- the API ----------------------------------------------------------------------

  function api(method, path, body, keepalive) {
    return fetch(path, {
      method, credentials: 'same-origin', keepalive: !!keepalive,
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf, Accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }
  const retryable = (status) => status >= 500 || status === 408 || status === 429;
  const reactionPath = (id) => `/api/tips/${encodeURIComponent(id)}/reactions`;

  async function refresh() {
    try {
      const res = await fetch('/api/tip', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (res.ok) show((await res.json()).tip);
    } catch (_) { /* offline: the live stream catches up later */ }
  }

  async function send(decisionId, body, keepalive) {
    let res;
    try {
      res = await api('POST', reactionPath(decisionId), body, keepalive);
    } catch (_) {
      return queue(decisionId, body);
    }
    if (retryable(res.status)) return queue(decisionId, body);
    if ((res.status === 409 || res.status === 404) && body.reaction !== 'seen') {
      say('That tip had already moved on.');
      refresh();
    }
  }

  // --- reactions ----------------------------------------------------------------------

  function react(reaction, extra, message) {
    const t = tip;
    if (!t) return;
    const body = Object.assign({ reaction }, extra);
    const ms = dwellMs();
    if (ms > 0) body.dwell_ms = ms;
    answered.add(t.decision_id);
    seenSent.add(t.decision_id); // the answer carries the dwell
    show(null);
    say(message || SAID[reaction] || '');
    send(t.decision_id, body);
  }

  const tap = () => { if (tip) react(tip.kind === 'todo' ? 'done' : 'ack'); };

  /** When a snooze choice ends, in the browser's local time ("hour", "tonight", "tomorrow"). */
  function snoozeUntil(when, now) {
    const hourLater = new Date(now.getTime() + 3600e3);
    const at = new Date(now.getTime());
    if (when === 'tonight') {
      at.setHours(20, 0, 0, 0);
      return at > hourLater ? at : hourLater;
    }
    if (when === 'tomorrow') {
      // Just after midnight, "tomorrow" means the coming morning, not the one after.
      if (now.getHours() >= 4) at.setDate(at.getDate() + 1);
      at.setHours(8, 0, 0, 0);
      return at;
    }
    return hourLater;
  }

  function formatWhen(at) {
    const sameDay = at.toDateString() === new Date().toDateString();
    const time = at.toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
    return sameDay ? time : `${at.toLocaleDateString([], { weekday: 'long' })} ${time}`;
  }

  // --- seen, and for how long -----------------------------------------------------------

  let dwell = 0, since = 0, seenTimer = 0;
  const visible = () => d.visibilityState === 'visible';
  const dwellMs = () => Math.round(dwell + (since ? performance.now() - since : 0));

  function startDwell() {
    if (!tip || !visible() || since) return;
    since = performance.now();
    clearTimeout(seenTimer);
    if (!seenSent.has(tip.decision_id)) {
      seenTimer = setTimeout(() => seen(false), Math.max(0, SEEN_AFTER_MS - dwellMs()));
    }
  }
  function pauseDwell() {
    if (since) dwell += performance.now() - since;
    since = 0;
    clearTimeout(seenTimer);
  }
  function leaveDwell() { pauseDwell(); dwell = 0; }

  function seen(leaving) {
    if (!tip || seenSent.has(tip.decision_id) || !csrf) return;
    const ms = dwellMs();
    if (ms < SEEN_MIN_MS) return;
    seenSent.add(tip.decision_id);
    send(tip.decision_id, { reaction: 'seen', dwell_ms: ms }, leaving);
  }

  // --- the offline queue (IndexedDB) ------------------------------------------------------

  const STORE = 'reactions';
  function store(mode, work) {
    return new Promise((resolve, reject) => {
      const open = indexedDB.open('oo', 1);
      open.onupgradeneeded = () => open.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true });
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const db = open.result, tx = db.transaction(STORE, mode), req = work(tx.objectStore(STORE));
        tx.oncomplete = () => { db.close(); resolve(req && req.result); };
        tx.onerror = tx.onabort = () => { db.close(); reject(tx.error); };
      };
    });
  }
  const queued = () => (w.indexedDB ? store('readonly', (s) => s.getAll()) : Promise.resolve([]));

  function queue(decisionId, body) {
    if (!w.indexedDB) return Promise.resolve();
    return store('readwrite', (s) => s.add({ decision_id: decisionId, body, at: Date.now() }))
      .catch(() => {});
  }

  let flushing = false;
  /** Send queued reactions in order; stop at the first that still cannot go. */
  async function flush() {
    if (flushing || !csrf || !w.indexedDB) return;
    flushing = true;
    try {
      for (const item of await queued()) {
        let res;
        try { res = await api('POST', reactionPath(item.decision_id), item.body); } catch (_) { break; }
        if (retryable(res.status)) break;
        await store('readwrite', (s) => s.delete(item.id));
      }
    } catch (_) { /* storage unavailable: nothing to send */ } finally {
      flushing = false;
    }
  }

  // --- the menu --------------------------------------------------------------------------

  function openMenu() {
    if (!tip || el.menu.open) return;
    if (typeof el.menu.showModal === 'function') el.menu.showModal(); else el.menu.setAttribute('open', '');
    el.menu.querySelector('button').focus();
  }
  function showWhy(open) {
    el.why.hidden = !open;
    el.whyButton.setAttribute('aria-expanded', String(open));
  }
  function closeMenu() {
    if (!el.menu.open) return;
    if (typeof el.menu.close === 'function') el.menu.close(); else el.menu.removeAttribute('open');
  }

  el.menu.addEventListener('close', () => { showWhy(false); if (!tip) el.stage.focus({ preventScroll: true }); });
  el.menu.addEventListener('click', (e) => {
    const box = el.menu.getBoundingClientRect();
    const outside = e.target === el.menu && (e.clientX < box.left || e.clientX > box.right ||
      e.clientY < box.top || e.clientY > box.bottom);
    if (outside) return closeMenu(); // a click on the backdrop
    const button = e.target.closest('button');
    if (!button) return;
    if (button.dataset.action === 'why') return showWhy(el.why.hidden);
    const reaction = button.dataset.reaction;
    if (!reaction) return closeMenu();
    if (reaction !== 'snooze') return react(reaction);
    const at = snoozeUntil(button.dataset.when, new Date());
    react('snooze', { snooze_until: at.toISOString() }, `Snoozed until ${formatWhen(at)}.`);
  });
  el.menu.addEventListener('keydown', (e) => {
    const items = [...el.menu.querySelectorAll('button')];
    const i = items.indexOf(d.activeElement), n = items.length;
    const j = { ArrowDown: i + 1, ArrowRight: i + 1, ArrowUp: i - 1, ArrowLeft: i - 1, Home: 0, End: n - 1 }[e.key];
    if (j === undefined) return;
    e.preventDefault();
    items[(j + n) % n].focus();
  });

  // --- tap and long press ------------------------------------------------------------------

  let holdTimer = 0, held = false, moved = false, x0 = 0, y0 = 0;
  function cancelHold() { clearTimeout(holdTimer); el.tip.classList.remove('pressing'); }

  el.tip.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    held = false; moved = false; x0 = e.clientX; y0 = e.clientY;
    el.tip.classList.add('pressing');
    clearTimeout(holdTimer);
    holdTimer = setTimeout(() => {
      held = true;
      el.tip.classList.remove('pressing');
      if (nav.vibrate && nav.userActivation && nav.userActivation.isActive) nav.vibrate(8);
      openMenu();
    }, HOLD_MS);
  });
  el.tip.addEventListener('pointermove', (e) => {
    if (Math.abs(e.clientX - x0) > MOVE_PX || Math.abs(e.clientY - y0) > MOVE_PX) { moved = true; cancelHold(); }
  });
  for (const name of ['pointerup', 'pointercancel', 'pointerleave']) el.tip.addEventListener(name, cancelHold);
  el.tip.addEventListener('click', () => {
    if (held || moved) { held = moved = false; return; }
    tap();
  });
  el.tip.addEventListener('contextmenu', (e) => { e.preventDefault(); cancelHold(); held = true; openMenu(); });
  el.tip.addEventListener('keydown', (e) => {
    if ((e.key === 'Enter' || e.key === ' ') && !e.repeat) { e.preventDefault(); tap(); }
  });
  d.addEventListener('keydown', (e) => {
    if (!tip || el.menu.open || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === 'm' || e.key === 'M' || e.key === 'ContextMenu' || (e.key === 'F10' && e.shiftKey)) {
      e.preventDefault();
      openMenu();
    }
  });

  // --- live updates, context, time zone ------------------------------------------------------

  let delay = 1000;
  function live() {
    if (!w.EventSource) return;
    const source = new EventSource('/api/events');
    source.addEventListener('tip', (e) => {
      try { show(JSON.parse(e.data).tip); } catch (_) { /* a malformed event: wait for the next */ }
    });
    source.onopen = () => { delay = 1000; flush(); };
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
      setTimeout(live, delay); // refused (not 200): try again, slower each time
      delay = Math.min(delay * 2, 60000);
    };
  }

  const context = (kind, keepalive) => api('POST', '/api/context', { kind }, keepalive).catch(() => {});

  function timeZone() {
    let tz;
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (_) { return; }
    if (!tz) return;
    const mark = `${tz} ${csrf.slice(0, 12)}`; // once per session, and again after travel
    try { if (localStorage.getItem('oo.tz') === mark) return; } catch (_) { /* private mode */ }
    api('PUT', '/api/preferences', { time_zone: tz }).then((res) => {
      if (res.ok) try { localStorage.setItem('oo.tz', mark); } catch (_) { /* private mode */ }
    }).catch(() => {});
  }

  d.addEventListener('visibilitychange', () => {
    if (visible()) {
      startDwell();
      if (csrf) context('page_visible');
    } else {
      seen(true);
      pauseDwell();
      if (csrf) context('page_hidden', true);
    }
  });
  w.addEventListener('pagehide', () => seen(true));
  w.addEventListener('online', () => { flush(); refresh(); });
  w.addEventListener('pageshow', (e) => { if (e.persisted && csrf) refresh(); }); // back from the bfcache

  // --- service worker and Web Push ---------------------------------------------------------------

  function b64url(text) {
    const raw = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  async function vapidKey() {
    const key = meta('vapid-public-key');
    if (key) return key;
    return (await (await fetch('/api/vapid-public-key', { credentials: 'same-origin' })).json()).public_key;
  }
  function sameKey(sub, key) {
    const have = sub.options && sub.options.applicationServerKey;
    if (!have) return true;
    const a = new Uint8Array(have), b = b64url(key);
    return a.length === b.length && a.every((v, i) => v === b[i]);
  }
  const saveSubscription = (sub) => api('POST', '/api/push/subscriptions', sub.toJSON());

  async function offerPush(reg) {
    if (!csrf || !reg.pushManager || !('Notification' in w) || Notification.permission === 'denied') return;
    let sub = null;
    try {
      sub = await reg.pushManager.getSubscription();
      const key = meta('vapid-public-key');
      if (sub && key && !sameKey(sub, key)) { await sub.unsubscribe(); sub = null; } // keys were rotated
    } catch (_) { sub = null; }
    if (sub && Notification.permission === 'granted') {
      saveSubscription(sub).catch(() => {}); // keeps the server's copy current
      return;
    }
    el.notify.hidden = false;
  }

  el.notify.addEventListener('click', async () => {
    el.notify.disabled = true;
    try {
      if (await Notification.requestPermission() !== 'granted') {
        el.notify.hidden = true;
        return say('Notifications stay off.');
      }
      const reg = await nav.serviceWorker.ready;
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64url(await vapidKey()) });
      const res = await saveSubscription(sub);
      if (res.ok) {
        el.notify.hidden = true;
        say('Notifications on.');
      } else {
        await sub.unsubscribe();
        say('This browser\u2019s notifications cannot be used here.');
      }
    } catch (_) {
      say('Notifications could not be turned on.');
    } finally {
      el.notify.disabled = false;
    }
  });

  async function serviceWorker() {
    if (!('serviceWorker' in nav)) return;
    nav.serviceWorker.addEventListener('message', (e) => {
      const m = e.data || {};
      if (m.type === 'tip' || m.type === 'withdraw') refresh();
    });
    let reg;
    try { reg = await nav.serviceWorker.register('/sw.js', { scope: '/' }); } catch (_) { return; }
    await nav.serviceWorker.ready;
    d.documentElement.dataset.sw = 'ready';
    if ('PushManager' in w) offerPush(reg);
  }

  // --- start ---------------------------------------------------------------------------------------

  w.oO = { snoozeUntil, flush, queued };
  startDwell();
  if (csrf) {
    context('app_opened');
    timeZone();
    queued().then((items) => {
      for (const item of items) if (item.body.reaction !== 'seen') answered.add(item.decision_id);
      if (tip && answered.has(tip.decision_id)) show(null); // answered offline, before a reload
    }).catch(() => {}).then(() => { flush(); live(); });
  }
  serviceWorker();
  d.documentElement.dataset.ready = '1';
})();
