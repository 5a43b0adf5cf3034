"""docker compose is not available on the test machines: check the files parse and hang together."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_has_every_service_with_health_checks():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]

    assert set(services) >= {
        "postgres",
        "redis",
        "web",
        "worker",
        "beat",
        "gpu-collector",
        "token-collector",
    }
    for name in ("postgres", "redis", "web", "worker", "gpu-collector", "token-collector"):
        assert "healthcheck" in services[name], name
    assert services["gpu-collector"]["runtime"] == "nvidia"
    assert "gunicorn" in services["web"]["command"]


def test_env_example_names_only_known_settings():
    env_source = (ROOT / "config" / "settings" / "env.py").read_text()
    names = [
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    collector_flags = {"TESSERA_COLLECTOR_KEY", "TESSERA_NODE", "TESSERA_REGION"}
    assert [n for n in names if n not in collector_flags and f'"{n}"' not in env_source] == []


def test_dockerfile_copies_every_app():
    dockerfile = (ROOT / "Dockerfile").read_text()

    for app in ("config", "tenancy", "metering", "billing", "web"):
        assert f"COPY {app} ./{app}" in dockerfile
