"""The k8s Sandbox: its options, and what works today."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from swerl.components import ComponentOptions, Sandbox

#: RFC 1123 label: namespaces, label values (without the empty case).
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: RFC 1123 subdomain: secret names, label-key prefixes.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def _check_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(
            f"label key {key!r}: the prefix must be a DNS subdomain (e.g. example.com)"
        )
    if len(name) > 63 or not LABEL_NAME.match(name):
        raise ValueError(
            f"label key {key!r}: the name must be ≤ 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )


def _check_label_value(key: str, value: str) -> None:
    if value and (len(value) > 63 or not LABEL_NAME.match(value)):
        raise ValueError(
            f"label {key}={value!r}: the value must be ≤ 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )


class K8sSandboxOptions(ComponentOptions):
    """Options of the k8s sandbox (`sandbox.options`)."""

    context: str | None = Field(
        None, description="kubeconfig context to use; null uses the kubeconfig's current-context."
    )
    namespace: str = Field(
        "swerl", max_length=63, description="Namespace where trial pods and policies are created."
    )
    kubeconfig: Path | None = Field(
        None,
        description="kubeconfig file; null uses `$KUBECONFIG`, then `~/.kube/config`. "
        "A relative path is taken from the working directory.",
    )
    image_pull_secret: str | None = Field(
        None,
        description="Name of a docker-registry secret in the namespace for pulling task images.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels trial pods must land on (`nodeSelector`)."
    )
    cpu_limit: str = Field(
        "1", description="CPU limit per trial pod, as a Kubernetes quantity (`2`, `500m`)."
    )
    memory_limit: str = Field(
        "4Gi", description="Memory limit per trial pod, as a Kubernetes quantity (`4Gi`, `512Mi`)."
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on every object swerl creates (swerl adds its own run labels, "
        "which `swerl clean --pods` uses to find orphans).",
    )

    @field_validator("namespace")
    @classmethod
    def namespace_is_a_dns_label(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError(
                f"{value!r} is not a valid namespace: use lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @field_validator("image_pull_secret")
    @classmethod
    def secret_is_a_dns_subdomain(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 253 or not DNS_SUBDOMAIN.match(value)):
            raise ValueError(f"{value!r} is not a valid secret name (lowercase DNS subdomain)")
        return value

    @field_validator("cpu_limit")
    @classmethod
    def cpu_is_a_quantity(cls, value: str) -> str:
        if not CPU.match(value) or float(value.rstrip("m")) <= 0:
            raise ValueError(f"{value!r} is not a CPU quantity; write e.g. '2', '0.5' or '500m'")
        return value

    @field_validator("memory_limit")
    @classmethod
    def memory_is_a_quantity(cls, value: str) -> str:
        if not MEMORY.match(value):
            raise ValueError(f"{value!r} is not a memory quantity; write e.g. '4Gi' or '512Mi'")
        return value

    @field_validator("labels", "node_selector")
    @classmethod
    def labels_are_valid(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            _check_label_key(key)
            _check_label_value(key, label)
        return value


class K8sSandbox(Sandbox):
    name = "k8s"
    summary = "Harbor on a Kubernetes cluster, a NetworkPolicy allowing only the proxy"
    Options = K8sSandboxOptions
    ready = frozenset[str]()
    pending = "running trials on Kubernetes is not built yet (it follows the rollouts issue #3)"
