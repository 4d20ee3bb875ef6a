"""The worker's guards against two Faust behaviours (docs/reliability.md, "Rebalance churn")."""

import dataclasses

import pytest
from mode.utils.queues import FlowControlQueue

from agents.app import ResumeOnceFlowControl, create_app, internal_topics
from oo.settings import Settings
from tests.conftest import oo_test_environ

pytestmark = pytest.mark.unit


async def test_resume_clears_the_queues_only_after_a_suspend():
    flow = ResumeOnceFlowControl()
    queue: FlowControlQueue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    queue.put_nowait("fetched in this generation")
    flow.resume()  # the recovery resumes again once streams are running: nothing is dropped
    assert queue.qsize() == 1
    flow.suspend()  # a rebalance starts
    flow.resume()
    assert queue.qsize() == 0


def test_internal_topics_are_the_changelogs_and_the_leader_topic(tmp_path):
    settings = dataclasses.replace(Settings.from_env(oo_test_environ()), state_dir=tmp_path,
                                   app_id="oo-unit")
    topics = {t.name: t for t in internal_topics(create_app(settings))}
    assert set(topics) == {"oo-unit-features-changelog", "oo-unit-timers-changelog",
                           "oo-unit-__assignor-__leader"}
    features = topics["oo-unit-features-changelog"]
    assert features.partitions == settings.topic_partitions
    assert features.configs == {"cleanup.policy": "compact"}
    assert topics["oo-unit-__assignor-__leader"].partitions == 1


@pytest.mark.parametrize("role, app_id, agents, tables", [
    ("all", "oo-unit", {"oo.agents.engine", "oo.agents.notify", "oo.agents.notify_close"},
     {"features", "timers"}),
    ("engine", "oo-unit", {"oo.agents.engine"}, {"features", "timers"}),
    ("notify", "oo-unit-notify", {"oo.agents.notify", "oo.agents.notify_close"}, set()),
])
def test_a_worker_role_runs_its_agents_in_its_own_group(tmp_path, role, app_id, agents, tables):
    settings = dataclasses.replace(Settings.from_env(oo_test_environ()), state_dir=tmp_path,
                                   app_id="oo-unit")
    app = create_app(settings, role)
    assert app.conf.id == app_id
    assert set(app.agents) == agents
    assert set(app.tables) == tables
    assert {t.name for t in internal_topics(app)} == \
        {f"{app_id}-{t}-changelog" for t in tables} | {f"{app_id}-__assignor-__leader"}


def test_an_unknown_role_is_refused(tmp_path):
    settings = dataclasses.replace(Settings.from_env(oo_test_environ()), state_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown worker role 'relay'"):
        create_app(settings, "relay")
