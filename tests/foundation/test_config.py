"""Config validation: every broken key is named with its value and what was expected."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.config import DEFAULT_CONFIG_PATH, ConfigError, load_desk_config, load_env_settings

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path, data) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True) if not isinstance(data, str) else data)
    return path


def _shipped() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_the_shipped_config_is_valid():
    config = load_desk_config(DEFAULT_CONFIG_PATH)
    assert config.desk.currency == "CNY"
    assert {q.name for q in config.routing.queues} >= {"general", "billing", "vip"}


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["desk"].update(timezone="Mars/Olympus"), "desk.timezone: got 'Mars/Olympus'"),
    (lambda c: c["desk"].update(currency="yuan"), "desk.currency: got 'yuan'"),
    (lambda c: c["desk"].update(colour="blue"), "desk.colour: got 'blue'; expected extra inputs are not permitted"),
    (lambda c: c["routing"]["agent_groups"]["default"].update(capacity=0), "routing.agent_groups.default.capacity: got 0"),
    (lambda c: c["routing"]["queues"][0].pop("name"), "routing.queues.0.name: required key is missing"),
    (lambda c: c["calendars"]["default"]["weekly"].update(mon=["18:00-09:00"]), "calendars.default.weekly"),
    (lambda c: c["routing"]["queues"][0].update(calendar="nowhere"), "routing.queues.general.calendar: unknown calendar 'nowhere'"),
    (lambda c: c["dispositions"].append({"code": "Bad Code", "label_en": "x", "label_zh": "x"}), "dispositions.5.code"),
])
def test_a_broken_key_is_named_with_value_and_expectation(tmp_path, mutate, expected):
    data = _shipped()
    mutate(data)
    with pytest.raises(ConfigError) as caught:
        load_desk_config(_write(tmp_path, data))
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_missing_file_and_broken_yaml_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_desk_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_desk_config(_write(tmp_path, "desk: [unclosed"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_desk_config(_write(tmp_path, "- just\n- a list\n"))


def test_environment_variables_are_validated_by_name():
    with pytest.raises(ConfigError) as caught:
        load_env_settings({"PORT": "not-a-port"})
    assert caught.value.problems[0].startswith("PORT: got 'not-a-port'")
    settings = load_env_settings({"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://r"})
    assert not settings.embedded and settings.redis_url == "redis://r"
    assert load_env_settings({}).embedded and load_env_settings({}).dev_tools_enabled


def test_production_without_secret_key_is_refused():
    from app import create_app

    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app(env={"DATABASE_URL": "sqlite://"}, exit_on_config_error=False)


def test_a_broken_config_stops_the_cli_with_exit_status_2(tmp_path):
    data = _shipped()
    data["desk"]["timezone"] = "Nowhere/Special"
    path = _write(tmp_path, data)
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "routes"], cwd=REPO,
                            env={"CONFIG_PATH": str(path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "desk.timezone: got 'Nowhere/Special'" in result.stderr


def test_the_database_pool_comes_from_the_environment():
    from app import _engine_options

    sized = _engine_options(load_env_settings({"DATABASE_URL": "postgresql://x/y", "DATABASE_POOL_SIZE": "25",
                                               "DATABASE_MAX_OVERFLOW": "0"}))
    assert sized == {"pool_pre_ping": False, "pool_size": 25, "max_overflow": 0}
    default = _engine_options(load_env_settings({"DATABASE_URL": "postgresql://x/y"}))
    assert (default["pool_size"], default["max_overflow"]) == (30, 0)  # what a burst opens is kept, not churned
    assert "pool_size" not in _engine_options(load_env_settings({}))  # embedded SQLite: SQLAlchemy's own pool
    with pytest.raises(ConfigError) as caught:
        load_env_settings({"DATABASE_POOL_SIZE": "0"})
    assert caught.value.problems[0].startswith("DATABASE_POOL_SIZE: got '0'")


def test_publish_subscribe_channels_are_named_for_the_redis_database():
    from app.wiring import pubsub_channel
    from queues import router

    assert pubsub_channel("flask-socketio", "redis://127.0.0.1:6379/3") == "flask-socketio:3"
    assert pubsub_channel("desk:routing:hints", "redis://127.0.0.1:6379") == "desk:routing:hints:0"
    assert pubsub_channel("flask-socketio", None) == "flask-socketio"  # embedded: no Redis to share
    assert router.hint_channel().startswith(router.HINT_CHANNEL)
