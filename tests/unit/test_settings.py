import pytest

from oo.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


def test_defaults_are_valid_and_local():
    settings = Settings.from_env({})
    assert settings.env == "dev"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.database.port == 15432
    assert settings.database.name == "oo"
    assert settings.web_url == "http://127.0.0.1:8080/"


def test_every_variable_is_read():
    settings = Settings.from_env({
        "OO_ENV": "production", "OO_KAFKA_BOOTSTRAP": "k1:9092,k2:9093",
        "OO_DATABASE_URL": "postgresql://u@db:6543/x", "OO_WEB_PORT": "9000",
        "OO_WORKER_WEB_PORT": "9001", "OO_TOPIC_PARTITIONS": "12", "OO_TABLE_STORE": "memory://",
        "OO_STATE_DIR": "/tmp/s", "OO_KAFKA_VERSION": "4.0.0", "OO_LOG_LEVEL": "debug",
        "OO_VAPID_SUBJECT": "https://oo.example.org",
    })
    assert [str(s) for s in settings.kafka_bootstrap] == ["k1:9092", "k2:9093"]
    assert (settings.database.host, settings.database.port, settings.database.user) == ("db", 6543, "u")
    assert settings.topic_partitions == 12 and settings.table_store == "memory://"
    assert str(settings.state_dir) == "/tmp/s" and settings.log_level == "debug"
    assert str(settings.vapid_private_key) == "/tmp/s/vapid/private_key.pem"
    assert settings.vapid_subject == "https://oo.example.org"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("OO_ENV", "staging", "expected one of dev, test, production"),
        ("OO_WEB_PORT", "eighty", "not an integer"),
        ("OO_WEB_PORT", "70000", "out of range"),
        ("OO_TOPIC_PARTITIONS", "0", "out of range"),
        ("OO_KAFKA_BOOTSTRAP", "localhost", "expected host:port"),
        ("OO_DATABASE_URL", "mysql://x/y", "must start with postgresql://"),
        ("OO_DATABASE_URL", "postgresql://h:notaport/x", "invalid port"),
        ("OO_KAFKA_VERSION", "3.9.0", "Kafka 4.x"),
        ("OO_TABLE_STORE", "redis://", "rocksdb://, memory://"),
        ("OO_APP_ID", "a b", "may contain only"),
        ("OO_LOG_LEVEL", "", "set but empty"),
    ],
)
def test_bad_setting_is_one_line_naming_the_variable(name, value, fragment):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert name in message and fragment in message and "\n" not in message


def test_web_and_worker_ports_must_differ():
    with pytest.raises(SettingsError, match="must differ"):
        Settings.from_env({"OO_WEB_PORT": "7000", "OO_WORKER_WEB_PORT": "7000"})


def test_production_requires_a_vapid_subject_and_refuses_a_test_ca():
    with pytest.raises(SettingsError, match="OO_VAPID_SUBJECT is required in production"):
        Settings.from_env({"OO_ENV": "production"})
    with pytest.raises(SettingsError, match="OO_PUSH_EXTRA_HOSTS are for dev and test only"):
        Settings.from_env({"OO_ENV": "production", "OO_VAPID_SUBJECT": "mailto:a@b.org",
                           "OO_PUSH_CA_FILE": "/tmp/ca.pem"})
    assert Settings.from_env({}).vapid_subject == "mailto:oo@localhost"


def test_a_vapid_subject_must_be_a_contact():
    with pytest.raises(SettingsError, match="OO_VAPID_SUBJECT='me' must be mailto"):
        Settings.from_env({"OO_VAPID_SUBJECT": "me"})
