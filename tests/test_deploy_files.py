"""No Docker engine runs on the test machines: check that the deployment files parse and hang
together, deriving what they must contain from the code (INSTALLED_APPS, the imports, the
settings) rather than from a list kept beside them."""

import ast
import re
from pathlib import Path

import pytest
import yaml
from django.apps import apps
from django.conf import settings

from config.settings import env

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
NGINX = (ROOT / "deploy" / "nginx.conf").read_text()


# .dockerignore, read the way Docker reads it (moby patternmatcher): patterns in order, `!`
# re-includes, the last pattern that matches the path or one of its parents decides.
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


Rules = list[tuple[bool, re.Pattern[str]]]


def dockerignore_rules(text: str) -> Rules:
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), _pattern_regex(line.lstrip("!").strip("/"))))
    return rules


RULES = dockerignore_rules((ROOT / ".dockerignore").read_text())


def in_image(path: str, rules: Rules = RULES) -> bool:
    """Whether the build context (hence ``COPY . .``) keeps ``path`` (relative, with /)."""
    parts = path.split("/")
    kept = True
    for include, regex in rules:
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            kept = include
    return kept


LOCAL_PACKAGES = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}


def source_files() -> list[Path]:
    return [
        p
        for p in ROOT.rglob("*")
        if p.is_file() and not {".git", ".venv", "__pycache__", "var"} & set(p.parts)
    ]


def local_app_dirs() -> dict[str, str]:
    """Every app in INSTALLED_APPS that is a package of this tree, with its directory."""
    dirs = {c.name: Path(c.path).relative_to(ROOT) for c in apps.get_app_configs()
            if Path(c.path).is_relative_to(ROOT)}  # fmt: skip
    return {name: d.as_posix() for name, d in dirs.items() if d.parts[0] in LOCAL_PACKAGES}


def test_dockerignore_is_read_the_way_docker_reads_it():
    rules = dockerignore_rules("**/__pycache__\ndocs\n!docs/keep.md\n*.md\n")

    assert not in_image("billing/__pycache__/x.pyc", rules)
    assert not in_image("__pycache__/x.pyc", rules)  # **/ matches no directory too
    assert not in_image("docs/a.txt", rules)  # a directory takes its files with it
    assert in_image("docs/keep.md", rules)  # ! takes a file back
    assert not in_image("README.md", rules)
    assert in_image("billing/README.md", rules)  # patterns are anchored at the context root
    assert in_image("documentation/x", rules)


def test_the_image_is_built_from_the_whole_tree():
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert re.search(r"^COPY \. \.$", dockerfile, re.MULTILINE)
    # no app picked by hand: the context, filtered by .dockerignore, is the list
    copies = re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE)
    assert sorted(copies) == [". .", "pyproject.toml ./"]


def test_every_installed_app_goes_into_the_image_whole():
    app_dirs = local_app_dirs()
    # the eight apps of this tree, found from settings (the old test listed five by hand)
    assert set(app_dirs.values()) >= {"tenancy", "metering", "billing", "web", "portal", "audit"}
    for name, directory in app_dirs.items():
        files = [p.relative_to(ROOT).as_posix() for p in (ROOT / directory).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts]  # fmt: skip
        assert files, name
        assert [f for f in files if not in_image(f)] == [], name
    for module in (settings.ROOT_URLCONF, settings.WSGI_APPLICATION, *settings.CELERY_IMPORTS):
        assert in_image(module.split(".")[0]), module
    assert in_image("manage.py")


def test_the_image_leaves_out_checkout_state_and_secrets():
    for path in (".git/HEAD", ".venv/bin/python", "var/tessera.sqlite3", ".env",
                 "billing/__pycache__/models.cpython-311.pyc", "tests/conftest.py"):  # fmt: skip
        assert not in_image(path), path


def test_code_in_the_image_imports_nothing_left_out_of_it():
    """A module that imports from tests/ or bench/ would start on a laptop and fail in the
    image: every import of a top-level name of this tree must resolve inside the image."""
    local = LOCAL_PACKAGES | {p.stem for p in ROOT.glob("*.py")}
    missing = []
    for path in source_files():
        relative = path.relative_to(ROOT).as_posix()
        if path.suffix != ".py" or not in_image(relative):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in local and not in_image(top):
                    missing.append(f"{relative}: import {name}")
    assert missing == []


def test_compose_has_every_service_with_health_checks():
    assert set(SERVICES) >= {"postgres", "redis", "migrate", "web", "proxy", "worker", "beat",
                             "gpu-collector", "token-collector"}  # fmt: skip
    long_running = [name for name, s in SERVICES.items() if s.get("restart") != "no"]
    assert sorted(long_running) == sorted(set(SERVICES) - {"migrate"})
    for name in long_running:
        check = SERVICES[name].get("healthcheck", {})
        assert check.get("test"), name
        assert check.get("interval"), name
        assert check.get("retries"), name
    assert SERVICES["gpu-collector"]["runtime"] == "nvidia"
    assert "gunicorn" in SERVICES["web"]["command"]
    assert "--enable-remote-control" in SERVICES["beat"]["command"]
    assert "celerybeat@" in SERVICES["beat"]["healthcheck"]["test"][-1]


def test_only_the_buffering_proxy_is_published_and_everything_reaches_web_through_it():
    published = {name for name, s in SERVICES.items() if s.get("ports")}
    assert published == {"proxy"}
    proxy = SERVICES["proxy"]
    assert proxy["depends_on"]["web"] == {"condition": "service_healthy"}
    [mount] = proxy["volumes"]
    source, target = mount.split(":")[:2]
    assert (ROOT / source).resolve() == ROOT / "deploy" / "nginx.conf"
    assert target.startswith("/etc/nginx/conf.d/")
    found = re.search(r"^\s*listen (\d+);", NGINX, re.MULTILINE)
    assert found is not None, "nginx.conf has no listen directive"
    listen = int(found[1])
    assert proxy["ports"] == [f"8000:{listen}"]
    for collector in ("gpu-collector", "token-collector"):
        command = " ".join(SERVICES[collector]["command"])
        assert f"--api-url http://proxy:{listen}" in command, collector
    hosts = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )["ALLOWED_HOSTS"].split(",")  # fmt: skip
    assert "proxy" in hosts
    assert SERVICES["web"]["environment"]["TESSERA_BEHIND_PROXY"] == "true"


def nginx_directive(name: str) -> str:
    values = re.findall(rf"^\s*{name}\s+([^;]+);", NGINX, re.MULTILINE)
    assert len(values) == 1, name
    return values[0].strip()


def nginx_seconds(name: str) -> int:
    value = nginx_directive(name)
    assert value.endswith("s"), name
    return int(value[:-1])


def test_nginx_buffers_slow_clients_and_passes_full_batches():
    web = SERVICES["web"]["command"]
    assert nginx_directive("proxy_pass") == "http://tessera_web"
    assert re.search(r"upstream tessera_web \{\s*server web:8000;", NGINX)
    assert "0.0.0.0:8000" in web
    # buffering both ways (nginx's default, stated so nobody turns it off unknowingly)
    assert nginx_directive("proxy_request_buffering") == "on"
    assert nginx_directive("proxy_buffering") == "on"
    # the largest batch the API takes gets through to the API's own 413
    size = nginx_directive("client_max_body_size")
    assert size.endswith("m")
    assert int(size[:-1]) * 2**20 > env.MAX_BODY_BYTES
    # slow clients are cut off by nginx before gunicorn's worker timeout would matter
    timeout = int(web[web.index("--timeout") + 1])
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert 0 < nginx_seconds(name) <= timeout, name
    assert nginx_seconds("proxy_read_timeout") == timeout
    # the client's address is set by the proxy, never appended to what the client sent
    assert nginx_directive("proxy_set_header X-Real-IP") == "$remote_addr"
    assert nginx_directive("proxy_set_header X-Forwarded-For") == "$remote_addr"


@pytest.mark.django_db
def test_behind_the_proxy_login_throttling_keys_on_the_clients_address(settings, rf):
    from axes.helpers import get_client_ip_address

    request = rf.get("/", HTTP_X_REAL_IP="203.0.113.7", REMOTE_ADDR="172.18.0.5")
    assert get_client_ip_address(request) == "172.18.0.5"  # the proxy, for every client
    settings.AXES_CLIENT_IP_CALLABLE = "config.middleware.proxied_client_ip"

    assert get_client_ip_address(request) == "203.0.113.7"


def test_env_example_names_only_known_settings():
    env_source = (ROOT / "config" / "settings" / "env.py").read_text()
    names = [
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    collector_flags = {"TESSERA_COLLECTOR_KEY", "TESSERA_NODE", "TESSERA_REGION"}
    assert [n for n in names if n not in collector_flags and f'"{n}"' not in env_source] == []
