"""Preflight checks of the k8s sandbox: the kubeconfig and its context, read offline.

The kubeconfig is parsed as YAML the way kubectl merges it (first file wins for each name and for
`current-context`); the cluster is never contacted and the kubernetes client is never imported,
so `swerl check` stays quick and works on a laptop without cluster access.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from swerl.errors import did_you_mean
from swerl_sandbox_k8s.component import K8sSandboxOptions

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report

KUBECONFIG_FIX = (
    "set sandbox.options.kubeconfig or KUBECONFIG to your cluster's kubeconfig "
    "(or write ~/.kube/config with kubectl config set-cluster/set-credentials/set-context)"
)


@dataclass
class KubeConfig:
    """The merged parts of one or more kubeconfig files that the checks need."""

    files: list[Path]
    current_context: str = ""
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)


class KubeConfigError(Exception):
    """A kubeconfig that cannot be used; the message names the file."""


def kubeconfig_files(opts: K8sSandboxOptions, env: Mapping[str, str]) -> list[Path]:
    """The files kubectl reads: the option, else $KUBECONFIG (a path list), else ~/.kube/config."""
    if opts.kubeconfig is not None:
        return [opts.kubeconfig.expanduser()]
    listed = env.get("KUBECONFIG", "")
    if listed:
        return [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _named(entries: Any, key: str, path: Path) -> dict[str, dict[str, Any]]:
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise KubeConfigError(f"{path}: '{key}' must be a list")
    named: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise KubeConfigError(f"{path}: every entry of '{key}' needs a name")
        body = entry.get(key.rstrip("s"))
        named[entry["name"]] = body if isinstance(body, dict) else {}
    return named


def read_kubeconfig(files: list[Path]) -> KubeConfig:
    """Merge ``files`` as kubectl does; missing files in a $KUBECONFIG list are ignored."""
    merged = KubeConfig(files=[])
    for path in files:
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise KubeConfigError(
                f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"
            ) from None
        except OSError as exc:
            raise KubeConfigError(f"{path}: cannot read it: {exc.strerror}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise KubeConfigError(f"{path}: a kubeconfig must be a mapping")
        merged.files.append(path)
        if not merged.current_context and isinstance(data.get("current-context"), str):
            merged.current_context = data["current-context"]
        for name, body in _named(data.get("contexts"), "contexts", path).items():
            merged.contexts.setdefault(name, body)
        for name, body in _named(data.get("clusters"), "clusters", path).items():
            merged.clusters.setdefault(name, body)
    return merged


def _options(config: SwerlConfig, report: Report) -> K8sSandboxOptions:
    opts = report.options("sandbox")
    if isinstance(opts, K8sSandboxOptions):
        return opts
    return K8sSandboxOptions.model_validate(config.sandbox.options)


def run_checks(config: SwerlConfig, report: Report, env: Mapping[str, str] | None = None) -> None:
    """Add the k8s rows to ``report`` (only called when the k8s sandbox is selected)."""
    opts = _options(config, report)
    check_context(opts, report, os.environ if env is None else env)
    check_kubectl(report)


def check_context(opts: K8sSandboxOptions, report: Report, env: Mapping[str, str]) -> None:
    name = "kube context"
    files = kubeconfig_files(opts, env)
    if opts.kubeconfig is not None and not files[0].is_file():
        report.fail(
            name,
            f"sandbox.options.kubeconfig {files[0]} does not exist",
            "fix the path in sandbox.options.kubeconfig (relative paths start at the working "
            "directory)",
        )
        return
    try:
        kube = read_kubeconfig(files)
    except KubeConfigError as exc:
        report.fail(name, str(exc), "fix or regenerate that kubeconfig")
        return
    if not kube.files:
        shown = ", ".join(str(f) for f in files)
        report.fail(name, f"no kubeconfig found (looked at {shown})", KUBECONFIG_FIX)
        return
    where = ", ".join(str(f) for f in kube.files)
    choices = ", ".join(sorted(kube.contexts)) or "none"
    wanted = opts.context or kube.current_context
    if not wanted:
        report.fail(
            name,
            f"{where} sets no current-context and sandbox.options.context is not set",
            f"set sandbox.options.context to one of: {choices}",
        )
        return
    if wanted not in kube.contexts:
        source = "sandbox.options.context" if opts.context else "current-context"
        report.fail(
            name,
            f"{source} '{wanted}' is not in {where}.{did_you_mean(wanted, kube.contexts)}",
            f"set sandbox.options.context to one of: {choices}",
        )
        return
    cluster = kube.contexts[wanted].get("cluster")
    if not isinstance(cluster, str) or cluster not in kube.clusters:
        report.fail(
            name,
            f"context '{wanted}' names cluster {cluster!r}, which {where} does not define",
            f"add the cluster to the kubeconfig (kubectl config set-cluster {cluster or 'NAME'})",
        )
        return
    server = kube.clusters[cluster].get("server", "no server set")
    report.passed(
        name,
        f"context '{wanted}' -> cluster '{cluster}' ({server}), namespace '{opts.namespace}', "
        f"from {where}",
    )


def check_kubectl(report: Report) -> None:
    """kubectl is not needed to run trials; it is how you look at them and clean up by hand."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        report.warn(
            "kubectl",
            "kubectl is not on PATH: you will need it to inspect trial pods",
            "apt-get install kubectl (or install it from the Kubernetes release binaries)",
        )
    else:
        report.passed("kubectl", f"kubectl at {kubectl}")
