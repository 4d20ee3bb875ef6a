/* oO service worker: the shell offline, push notifications, and a click that opens the page.
   Served at /sw.js so its scope is the whole site. Bump VERSION when the shell's list changes. */
'use strict';
const VERSION = 'oo-shell-v1';
const SHELL = [
  '/static/oo.css', '/static/oo.js', '/manifest.webmanifest',
  '/static/icons/icon-192.png', '/static/icons/icon-512.png', '/static/icons/badge-96.png',
];
const TAG = 'oo-tip';

const usable = (res) => res && res.ok && res.type === 'basic' && !res.redirected;

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(VERSION);
    await cache.addAll(SHELL);
    // The page itself is cached too, when it can be had without a redirect (signed in).
    try {
      const page = await fetch('/', { credentials: 'same-origin' });
      if (usable(page)) await cache.put('/', page);
    } catch (_) { /* offline at install: cached on the next visit */ }
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== VERSION) await caches.delete(name);
    await self.clients.claim();
  })());
});

// --- fetch: network first for the page, cache first for the shell ------------------------------

async function pageFirstFromNetwork(request) {
  const cache = await caches.open(VERSION);
  try {
    const res = await fetch(request);
    if (usable(res)) await cache.put('/', res.clone());
    return res;
  } catch (err) {
    const cached = await cache.match('/');
    if (cached) return cached;
    throw err;
  }
}

async function shellFromCache(event) {
  const cache = await caches.open(VERSION);
  const cached = await cache.match(event.request, { ignoreSearch: true });
  const fresh = fetch(event.request).then(async (res) => {
    if (usable(res)) await cache.put(event.request, res.clone());
    return res;
  });
  if (cached) {
    event.waitUntil(fresh.catch(() => {})); // refresh it for the next visit
    return cached;
  }
  return fresh;
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname === '/' || request.mode === 'navigate') {
    if (url.pathname === '/') event.respondWith(pageFirstFromNetwork(request));
    return;
  }
  if (url.pathname.startsWith('/static/') || url.pathname === '/manifest.webmanifest') {
    event.respondWith(shellFromCache(event));
  }
  // /api/* (the live stream included) always goes to the network.
});

// --- push ----------------------------------------------------------------------------------------

const windows = () => self.clients.matchAll({ type: 'window', includeUncontrolled: true });

async function showTip(tip) {
  const pages = await windows();
  // A page of ours in front of the person shows the tip itself, live: no notification then.
  if (!pages.some((p) => p.focused && p.visibilityState === 'visible')) {
    await self.registration.showNotification(tip.title || 'oO', {
      body: tip.body || '',
      tag: TAG,
      renotify: true,
      lang: 'en',
      dir: 'auto',
      icon: '/static/icons/icon-192.png',
      badge: '/static/icons/badge-96.png',
      timestamp: Date.now(),
      data: { decision_id: tip.decision_id, tip_id: tip.tip_id, kind: tip.kind, url: tip.url || null },
    });
  }
  for (const page of pages) page.postMessage({ type: 'tip', decision_id: tip.decision_id });
}

async function withdraw(decisionId) {
  for (const n of await self.registration.getNotifications({ tag: TAG })) {
    if (n.data && n.data.decision_id === decisionId) n.close();
  }
  for (const page of await windows()) page.postMessage({ type: 'withdraw', decision_id: decisionId });
}

self.addEventListener('push', (event) => {
  let message = {};
  try { message = event.data ? event.data.json() : {}; } catch (_) { return; }
  if (message.type === 'tip' && message.decision_id) event.waitUntil(showTip(message));
  else if (message.type === 'withdraw' && message.decision_id) event.waitUntil(withdraw(message.decision_id));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const page = (await windows()).find((p) => new URL(p.url).origin === self.location.origin);
    if (page) {
      await page.focus();
      page.postMessage({ type: 'tip' });
      return;
    }
    await self.clients.openWindow('/');
  })());
});
