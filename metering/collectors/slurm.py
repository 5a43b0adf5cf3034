"""Slurm as an allocation source: running jobs, their GPU indices on this node, and the
job's account mapped to an org (SPEC §4).

Reads the JSON of ``squeue --json`` (or ``scontrol show job --json``, same shape) from a
command, or ``GET …/slurm/v0.0.4x/jobs`` from slurmrestd. The shapes of Slurm 23.02 to 24.11 are
read: ``jobs[].job_state`` a string or a list (``["RUNNING"]``, ``["RUNNING", "COMPLETING"]``),
``nodes`` a hostlist (``gpu-[01-04,07]``), ``gres_detail`` one entry per node of the job in the
hostlist's order (``gpu:h100:2(IDX:0-1)``, ``gpu:2(IDX:0,3)``, several gres comma-joined),
``account``, ``job_id``.

A GPU index is the node's GPU index, as Slurm's gres.conf numbers them (with ``AutoDetect=nvml``
the NVML order, which this collector reads too). An index of a GPU in MIG mode holds every MIG
instance of it.
"""

import json
import logging
import re
import shlex
import subprocess
from collections.abc import Mapping
from typing import Any

import httpx

from .allocations import AllocationsUnavailable, Claim, MappingFile
from .devices import DeviceInfo

log = logging.getLogger("tessera.collectors.slurm")

DEFAULT_COMMAND = "squeue --json"
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def expand_hostlist(text: str) -> list[str]:
    """``gpu-[01-03,07],login1`` → ``[gpu-01, gpu-02, gpu-03, gpu-07, login1]`` (in order)."""
    hosts: list[str] = []
    for part in _split_outside_brackets(text):
        hosts.extend(_expand_one(part))
    return hosts


def _split_outside_brackets(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text.strip():
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"[": 1, "]": -1}.get(char, 0)
        current += char
    if current:
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _expand_one(pattern: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    names = []
    for item in match.group(1).split(","):
        bounds = _RANGE.match(item.strip())
        if not bounds:
            raise ValueError(f"hostlist {pattern!r}: {item!r} is not a number or a range")
        low, high = bounds.group(1), bounds.group(2) or bounds.group(1)
        width = len(low) if low.startswith("0") else 0
        for number in range(int(low), int(high) + 1):
            names.extend(_expand_one(f"{head}{number:0{width}d}{tail}"))
    return names


def gpu_indices(detail: str) -> list[int]:
    """``gpu:h100:2(IDX:0-1),gpu:a100:1(IDX:4),mps:10`` → ``[0, 1, 4]``; ``IDX:N/A`` → []."""
    indices: list[int] = []
    for entry in re.finditer(r"(?:^|,)\s*([^,(]+)(?:\(([^)]*)\))?", detail):
        name, extra = entry.group(1), entry.group(2) or ""
        if name.split(":", 1)[0] != "gpu" or "IDX:" not in extra:
            continue
        listed = extra.split("IDX:", 1)[1].split(")", 1)[0]
        for item in listed.split(","):
            bounds = _RANGE.match(item.strip())
            if bounds:
                low, high = int(bounds.group(1)), int(bounds.group(2) or bounds.group(1))
                indices.extend(range(low, high + 1))
    return indices


def _states(job: Mapping[str, Any]) -> list[str]:
    raw = job.get("job_state")
    return [str(s).upper() for s in (raw if isinstance(raw, list) else [raw])]


class SlurmJobs:
    """Running jobs holding GPUs of ``node`` → claims, the org from the account mapping."""

    name = "slurm"

    def __init__(
        self,
        *,
        node: str,
        accounts: MappingFile,
        command: str | None = DEFAULT_COMMAND,
        url: str | None = None,
        user: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.node = node
        self.accounts = accounts
        self.command = shlex.split(command) if command and not url else None
        self.url = url
        self.headers = {}
        if user:
            self.headers["X-SLURM-USER-NAME"] = user
        if token:
            self.headers["X-SLURM-USER-TOKEN"] = token
        self.timeout = timeout
        self.client = client or httpx.Client(timeout=timeout)

    def fetch(self) -> dict[str, Any]:
        try:
            if self.url:
                response = self.client.get(self.url, headers=self.headers)
                if response.status_code != 200:
                    raise AllocationsUnavailable(
                        f"slurmrestd HTTP {response.status_code}: {response.text[:200]}"
                    )
                document = response.json()
            else:
                assert self.command is not None
                done = subprocess.run(
                    self.command, capture_output=True, text=True, timeout=self.timeout, check=False
                )
                if done.returncode != 0:
                    raise AllocationsUnavailable(
                        f"{shlex.join(self.command)} exited {done.returncode}: "
                        f"{done.stderr.strip()[:200]}"
                    )
                document = json.loads(done.stdout)
        except (OSError, subprocess.TimeoutExpired, httpx.HTTPError, ValueError) as exc:
            raise AllocationsUnavailable(f"Slurm: {type(exc).__name__}: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("jobs"), list):
            raise AllocationsUnavailable("Slurm: the answer has no jobs list")
        for error in document.get("errors") or []:
            log.warning("Slurm reports: %s", error)
        return document

    def claims(self, devices: Mapping[str, DeviceInfo], now: float) -> list[Claim]:
        claims = []
        for job in self.fetch()["jobs"]:
            if "RUNNING" not in _states(job):
                continue
            try:
                hosts = expand_hostlist(str(job.get("nodes") or ""))
            except ValueError as exc:
                log.warning("job %s: %s", job.get("job_id"), exc)
                continue
            if self.node not in hosts:
                continue
            details = job.get("gres_detail") or []
            position = hosts.index(self.node)
            if position >= len(details):
                log.warning(
                    "job %s runs on %s but has no gres_detail for it", job.get("job_id"), self.node
                )
                continue
            account = str(job.get("account") or "")
            org = self.accounts.get(account) if account else None
            why = "" if org else f"Slurm account {account or '(none)'} maps to no org"
            holder = f"job {job.get('job_id')} ({account or 'no account'})"
            for index in gpu_indices(str(details[position])):
                found = sorted(u for u, d in devices.items() if d.index == index)
                if not found:
                    log.warning(
                        "%s holds GPU index %d, which this node does not have", holder, index
                    )
                for uuid in found:
                    claims.append(Claim(uuid, org, holder, why))
        return claims
