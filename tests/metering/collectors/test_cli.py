"""What an SRE relies on: exit codes, --version, every setting by flag, environment or file,
paths relative to the config file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metering.collectors import __version__, gpu, tokens
from metering.collectors.common import ConfigError, resolve_settings

from .fakeapi import KEY


def collector(kind: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    environ.pop("DJANGO_SETTINGS_MODULE", None)
    environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    return subprocess.run(
        [sys.executable, "-m", f"metering.collectors.{kind}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize("kind", ["gpu", "tokens"])
def test_version(kind):
    done = collector(kind, "--version")
    assert done.returncode == 0
    assert done.stdout.strip().endswith(__version__)


def test_gpu_once_fails_when_nvml_cannot_be_loaded(tmp_path):
    # this machine has no NVIDIA driver: the documented smoke test must say so with its code
    (tmp_path / "allocations.yaml").write_text("allocations: []\n")
    done = collector(
        "gpu", "--once", "--region", "eu-north", "--api-key", KEY,
        "--allocations-file", "allocations.yaml", "--spool", "spool.sqlite3",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "devices unavailable" in done.stderr
    assert (tmp_path / "spool.sqlite3").exists()  # relative flags: to the working directory


def test_gpu_collector_without_a_region_does_not_start(tmp_path):
    done = collector("gpu", "--once", "--api-key", KEY, "--spool", str(tmp_path / "s.sqlite3"))
    assert done.returncode == 2
    assert "region is required" in done.stderr
    assert "default" not in done.stderr.split("region is required")[1][:40]


def test_token_collector_with_nothing_to_collect_or_a_missing_log_fails(tmp_path):
    nothing = collector("tokens", "--once", "--api-key", KEY, "--spool", str(tmp_path / "a"))
    assert nothing.returncode == 2
    assert "nothing to collect" in nothing.stderr

    missing = collector(
        "tokens", "--once", "--api-key", KEY, "--spool", str(tmp_path / "b"),
        "--logs", str(tmp_path / "gateway" / "usage.jsonl"),
    )  # fmt: skip
    assert missing.returncode == 2
    assert "log file(s) not found" in missing.stderr


def test_an_unknown_key_in_the_config_file_is_an_error(tmp_path):
    (tmp_path / "gpu.yaml").write_text("region: eu-north\nwindow_secs: 60\n")
    done = collector("gpu", "--config", str(tmp_path / "gpu.yaml"), "--api-key", KEY)
    assert done.returncode == 2
    assert "unknown settings ['window_secs']" in done.stderr


def test_every_setting_by_flag_environment_or_file_and_paths_relative_to_the_file(tmp_path):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "gpu.yaml").write_text(
        yaml.safe_dump(
            {
                "region": "from-file",
                "spool": "spool/gpu.sqlite3",
                "allocations_file": "allocations.yaml",
                "window_seconds": 300,
                "sample_seconds": 10,
                "batch_size": 50,
            }
        )
    )
    parser = gpu.build_collector_parser()
    args = parser.parse_args(["--config", str(config_dir / "gpu.yaml"), "--batch-size", "70"])
    env = {
        "TESSERA_COLLECTOR_WINDOW_SECONDS": "600",
        "TESSERA_COLLECTOR_BATCH_SIZE": "60",
        "TESSERA_COLLECTOR_KEY": "legacy-key",  # the older name still works
        "TESSERA_COLLECTOR_ONCE": "true",
    }

    cfg = resolve_settings(args, gpu.SETTINGS, env)

    assert cfg["region"] == "from-file"
    assert cfg["spool"] == str(config_dir / "spool" / "gpu.sqlite3")
    assert cfg["allocations_file"] == str(config_dir / "allocations.yaml")
    assert cfg["window_seconds"] == 600  # environment over file
    assert cfg["batch_size"] == 70  # flag over environment
    assert cfg["sample_seconds"] == 10.0
    assert cfg["api_key"] == "legacy-key"
    assert cfg["once"] is True
    every = {s.name for s in gpu.SETTINGS}
    flags = {a.dest for a in parser._actions}
    assert every <= flags  # each one has its flag (and so its TESSERA_COLLECTOR_ variable)

    with pytest.raises(ConfigError, match="TESSERA_COLLECTOR_SAMPLE_SECONDS: could not convert"):
        resolve_settings(args, gpu.SETTINGS, {"TESSERA_COLLECTOR_SAMPLE_SECONDS": "five"})


def test_token_metric_names_and_sources_by_flag_or_environment(tmp_path):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "tokens.yaml").write_text(
        yaml.safe_dump(
            {
                "logs": [{"path": "logs/usage.jsonl", "source": "gw-1"}],
                "endpoints": [{"name": "own", "org": "acme", "url": "file://metrics.prom"}],
            }
        )
    )
    parser = tokens.build_token_parser()
    args = parser.parse_args(
        [
            "--config", str(config_dir / "tokens.yaml"),
            "--input-metric", "sglang:prompt_tokens_total", "--model-label", "model",
        ]
    )  # fmt: skip

    cfg = resolve_settings(args, tokens.SETTINGS, {"TESSERA_COLLECTOR_CACHED_METRIC": "hits"})
    logs, endpoints = tokens.sources_from(cfg)

    assert logs == [{"path": str(config_dir / "logs" / "usage.jsonl"), "source": "gw-1"}]
    [endpoint] = endpoints
    assert endpoint.url == f"file://{config_dir / 'metrics.prom'}"
    assert (endpoint.input_metric, endpoint.model_label, endpoint.cached_metric) == (
        "sglang:prompt_tokens_total",
        "model",
        "hits",
    )

    args = parser.parse_args([])
    cfg = resolve_settings(
        args,
        tokens.SETTINGS,
        {"TESSERA_COLLECTOR_ENDPOINTS": "a=acme=http://10.0.0.1/metrics b=globex=http://10.0.0.2/metrics",
         "TESSERA_COLLECTOR_LOGS": "/var/log/gw/usage.jsonl"},
    )  # fmt: skip
    logs, endpoints = tokens.sources_from(cfg)
    assert [(e.name, e.org) for e in endpoints] == [("a", "acme"), ("b", "globex")]
    assert logs == [{"path": "/var/log/gw/usage.jsonl"}]


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("name", ["gpu-kubernetes.yaml", "gpu-slurm.yaml", "gpu-dcgm.yaml"])
def test_the_example_gpu_configs_are_valid(name):
    args = gpu.build_collector_parser().parse_args(
        ["--config", str(EXAMPLES / "collectors" / name)]
    )
    cfg = resolve_settings(args, gpu.SETTINGS, {})
    for key in ("namespace_orgs_file", "slurm_accounts_file"):
        if cfg[key]:
            mapping = yaml.safe_load(Path(cfg[key]).read_text())
            assert mapping
            assert all(isinstance(v, str) for v in mapping.values())


def test_the_example_daemonset_mounts_what_the_example_config_reads():
    documents = list(
        yaml.safe_load_all((EXAMPLES / "collectors" / "gpu-collector-daemonset.yaml").read_text())
    )
    daemonset = next(d for d in documents if d["kind"] == "DaemonSet")
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    config = yaml.safe_load((EXAMPLES / "collectors" / "gpu-kubernetes.yaml").read_text())
    assert str(Path(config["kubelet_socket"]).parent) in mounts
    assert str(Path(config["spool"]).parent) in mounts
    assert {e["name"] for e in container["env"]} >= {
        "TESSERA_COLLECTOR_NODE",
        "TESSERA_COLLECTOR_API_KEY",
    }


def test_the_example_token_config_is_valid():
    args = tokens.build_token_parser().parse_args(["--config", str(EXAMPLES / "tokens.yaml")])
    logs, endpoints = tokens.sources_from(resolve_settings(args, tokens.SETTINGS, {}))
    assert logs == [{"path": "/var/log/gateway/usage.jsonl", "source": "gateway-eu-1"}]
    assert [e.name for e in endpoints] == ["acme-llama-70b", "globex-qwen-sglang"]
