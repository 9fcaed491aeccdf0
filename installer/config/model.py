"""The schema of kfinstall.yaml (apiVersion kfinstall.io/v1alpha1, kind Cluster).

Keys are camelCase in the file (Kubernetes style) and snake_case in Python. Every model forbids
unknown keys, so a typo is an error with a "did you mean" rather than a silently ignored setting.
Each field's description is the documentation the sample inventories repeat.
Defaults here are the built-in baseline; profiles (installer/profiles/*.yaml) overlay them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from installer.config.addresses import endpoint_problem, is_dns_label, is_dns_name, is_ip, preview, url_problem

API_VERSION = "kfinstall.io/v1alpha1"
KIND = "Cluster"
# Prometheus' duration syntax: units from ms to y, combinable largest first (1d12h).
_DURATION = re.compile(r"([0-9]+(ms|[smhdwy]))+")
_MODEL_PATH = re.compile(r"/models(/[A-Za-z0-9._-]+)+/?")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")


class Section(BaseModel):
    """Base of every section: camelCase keys, unknown keys rejected, immutable once built."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
    )


def _checked(value: str | None, problem: Callable[[str], str | None]) -> str | None:
    """Hosts, addresses and URLs reach kubeadm, kube-vip, apt sources and chart values: one token each."""
    reason = None if value is None else problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _quantity(value: str) -> str:
    if not _QUANTITY.fullmatch(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 10Gi")
    return value


class KubernetesSpec(Section):
    version: str | None = Field(
        None,
        description=(
            "Kubernetes minor (major.minor) or patch (major.minor.patch). Empty means the channel's default "
            "minor. "
            "Must lie inside the channel's supported range."
        ),
    )
    package_source: Literal["upstream", "mirror"] = Field(
        "upstream",
        description=(
            "Where kubeadm, kubelet and kubectl packages come from: the upstream per-minor package "
            "repository, or your own mirror (air-gapped sites; set packageMirror)."
        ),
    )
    package_mirror: str | None = Field(None, description="Base URL of the package mirror when packageSource is mirror.")
    packages_unreachable: Literal["fail", "skip"] = Field(
        "fail",
        description=(
            "When the Kubernetes packages cannot be reached: fail the host phase with the reason, or skip "
            "the kubeadm steps after printing it (rehearsal hosts; the lab profile's default)."
        ),
    )
    pod_subnet: str = Field("10.244.0.0/16", description="Pod network CIDR given to kubeadm and the CNI.")
    service_subnet: str = Field("10.96.0.0/12", description="Service network CIDR given to kubeadm.")
    cni: Literal["calico"] = Field("calico", description="The CNI plugin (Calico enforces NetworkPolicy).")
    control_plane_endpoint: str | None = Field(
        None, description=("A virtual IP (kube-vip) for the API server. Required with 3 or more control-plane hosts.")
    )
    kube_proxy_mode: Literal["iptables", "ipvs"] = Field("iptables", description="kube-proxy mode.")

    @field_validator("version", mode="before")
    @classmethod
    def _empty_version_is_unset(cls, value: object) -> object:
        # The sample says "empty means the channel's default": `version: ""` (or --set ...version=) is the
        # same as leaving the key out, not a version string to refuse.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("control_plane_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _checked(value, endpoint_problem)

    @field_validator("package_mirror")
    @classmethod
    def _mirror(cls, value: str | None) -> str | None:
        return _checked(value, lambda v: url_problem(v, ("http", "https")))

    @field_validator("pod_subnet", "service_subnet")
    @classmethod
    def _cidr(cls, value: str) -> str:
        ipaddress.ip_network(value, strict=True)
        return value


class ContainerdSpec(Section):
    source: Literal["distro", "upstream"] = Field(
        "upstream",
        description=(
            "distro: the operating system's containerd package (at least the channel's minimumDistro); "
            "upstream: the channel's pinned containerd release."
        ),
    )


class MigSpec(Section):
    strategy: Literal["none", "single", "mixed"] = Field(
        "none", description=("MIG strategy for the device plugin. MIG is left alone unless this is single or mixed.")
    )
    config: str | None = Field(None, description="MIG profile set applied by the MIG manager (nvidia.com/mig.config).")


class GpuSpec(Section):
    enabled: bool = Field(True, description="Install the GPU stack on hosts in the gpu group.")
    stack: Literal["gpu-operator", "device-plugin", "gke"] = Field(
        "gpu-operator",
        description=(
            "gpu-operator: NVIDIA GPU Operator with the host driver and toolkit preinstalled by Ansible; "
            "device-plugin: the bare device plugin plus dcgm-exporter; gke: GKE-managed drivers (gcp only)."
        ),
    )
    driver_branch: str | None = Field(None, description="NVIDIA driver branch; empty means the channel's branch.")
    time_slicing_replicas: int = Field(1, ge=1, le=64, description="Pods sharing one GPU by time slicing (1 = off).")
    mig: MigSpec = Field(default_factory=MigSpec, description="Multi-Instance GPU settings.")


def _host_path(value: str) -> str:
    """A path that reaches a host's config files and commands (exports, ganesha.conf, fstab, gluster)."""
    if any(not c.isprintable() for c in value):
        raise ValueError(f"{preview(value)} holds a newline or another control character")
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    if value.rstrip("/") == "" or ".." in value.split("/"):
        raise ValueError(f"{preview(value)} must name a directory below / without '..'")
    return value


# exports(5) options: comma-separated words, some with =value (anonuid=1000, sec=sys:krb5, fsid=0).
_EXPORT_OPTION = re.compile(r"^[a-z_]+(=[A-Za-z0-9_.:/@+-]+)?$")
_MOUNT_OPTION = re.compile(r"^[A-Za-z0-9_.:/@+-]+(=[A-Za-z0-9_.:/@+,-]+)?$")
_GLUSTER_VOLUME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
def _allowed_clients_help(own_hosts: str, server: str) -> str:
    return (
        f"Clients allowed besides the cluster's own hosts ({own_hosts}, each at its ansible_host address, "
        f"are always allowed): IP addresses, CIDR networks or DNS names, e.g. the storage network the nodes "
        f"reach {server} from. Every other host is refused; '*' is refused."
    )


def _allowed_client(value: str) -> str:
    """One entry of allowedClients: an IP address, a CIDR network or a DNS name; never everyone."""
    if any(not c.isprintable() or c.isspace() for c in value):
        raise ValueError(f"{preview(value)} is not an IP address, CIDR network or DNS name")
    if value == "*" or "*" in value or "?" in value:
        raise ValueError(
            f"{preview(value)} would let every host that reaches the server in as root; "
            "list addresses or networks instead, e.g. 10.0.0.0/16"
        )
    if "%" in value:
        # exports(5), ganesha and glusterd match client addresses without a zone: the entry would
        # never match (or break the file) instead of letting the host in.
        raise ValueError(f"{preview(value)} has an IPv6 zone (%...); write the address or network without it")
    if "/" in value:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{preview(value)} is not a CIDR network such as 10.0.0.0/16") from None
        if network.network_address != ipaddress.ip_address(value.split("/", 1)[0]):
            raise ValueError(f"{preview(value)} has host bits set; did you mean {network}?")
        if network.prefixlen == 0:
            raise ValueError(f"{preview(value)} is every address; list the cluster's networks instead")
        value = str(network)  # the canonical form (2001:DB8::/32 as 2001:db8::/32, /255.0.0.0 as /8)
    if "/" in value or is_ip(value) or is_dns_name(value):
        return value
    raise ValueError(f"{preview(value)} is not an IP address, CIDR network or DNS name")


AllowedClient = Annotated[str, AfterValidator(_allowed_client)]


def _mount_option(value: str) -> str:
    """One NFS mount option (a word, or word=value); they reach mount(8) and the StorageClass."""
    if not _MOUNT_OPTION.fullmatch(value):
        raise ValueError(f"{preview(value)} is not a mount option such as nfsvers=4.1 or hard")
    return value


MountOption = Annotated[str, AfterValidator(_mount_option)]


class NfsSpec(Section):
    enabled: bool = Field(True, description="Serve an NFS export from the nfs_server host.")
    implementation: Literal["kernel", "ganesha"] = Field(
        "kernel", description=("kernel: in-kernel nfsd; ganesha: userspace nfs-ganesha (works where nfsd cannot load).")
    )
    export_path: str = Field("/export/kfinstall", description="Directory exported by the NFS server.")
    export_options: str = Field(
        "rw,sync,no_root_squash,no_subtree_check",
        description=(
            "Export options (exports(5)), given to the allowed clients only. no_root_squash: csi-driver-nfs "
            "creates, archives and removes each volume's directory as root, and the kubelet changes a volume's "
            "group for fsGroup as root; root_squash breaks both."
        ),
    )
    allowed_clients: list[AllowedClient] = Field(
        default_factory=list,
        description=_allowed_clients_help("the kube_control_plane, kube_node and nfs_server hosts", "the server"),
    )
    mount_options: list[MountOption] = Field(
        default_factory=lambda: ["nfsvers=4.1", "hard"],
        description=("Mount options used by clients and by the NFS StorageClass."),
    )
    storage_class: str = Field("nfs", description="Name of the StorageClass on the export.")

    _check_path = field_validator("export_path")(classmethod(lambda cls, v: _host_path(v)))

    @field_validator("export_options")
    @classmethod
    def _options(cls, value: str) -> str:
        if any(not c.isprintable() for c in value):
            raise ValueError(f"{preview(value)} holds a newline or another control character")
        bad = [option for option in value.split(",") if not _EXPORT_OPTION.fullmatch(option)]
        if bad:
            raise ValueError(
                f"{preview(bad[0])} is not an export option: write comma-separated words such as "
                "rw,sync,no_root_squash,no_subtree_check (no spaces, clients or parentheses)"
            )
        return value



class GlusterSpec(Section):
    enabled: bool = Field(False, description="Build a replicated GlusterFS volume on the gluster hosts.")
    volume: str = Field("kfinstall", description="Gluster volume name.")
    replica: int = Field(3, ge=2, le=9, description="Replica count; needs at least that many gluster hosts.")
    brick_path: str = Field("/data/gluster/kfinstall", description="Brick directory on each gluster host.")
    brick_device: str | None = Field(
        None,
        description="Block device formatted (xfs) and mounted for the brick; empty keeps the path on the root disk.",
    )
    mount_path: str = Field("/mnt/gluster/kfinstall", description="FUSE mount point on every Kubernetes node.")
    allowed_clients: list[AllowedClient] = Field(
        default_factory=list, description=_allowed_clients_help("the kube_node and gluster hosts", "the bricks")
    )
    storage_class: str = Field("gluster-rwx", description="ReadWriteMany StorageClass over the node mount.")

    _check_paths = field_validator("brick_path", "mount_path")(classmethod(lambda cls, v: _host_path(v)))

    @field_validator("brick_device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        return None if value is None else _host_path(value)

    @field_validator("volume")
    @classmethod
    def _volume(cls, value: str) -> str:
        if not _GLUSTER_VOLUME.fullmatch(value):
            raise ValueError(f"{preview(value)} is not a Gluster volume name (letters, digits, '_' and '-')")
        return value


class StorageSpec(Section):
    default_class: Literal["nfs", "gluster", "filestore"] = Field(
        "nfs", description=("Which backend's StorageClass is the cluster default (filestore only on gcp).")
    )
    nfs: NfsSpec = Field(
        default_factory=NfsSpec, description="An NFS export on the nfs_server host; the default StorageClass."
    )
    gluster: GlusterSpec = Field(
        default_factory=GlusterSpec, description="A GlusterFS replica volume, FUSE-mounted on every node."
    )


class LdapSpec(Section):
    url: str | None = Field(None, description="LDAP server URL, e.g. ldaps://ldap.example.com:636.")
    bind_dn: str | None = Field(
        None,
        description=("DN the hub binds as to look users up; its password goes in secrets.yml (ldap_bind_password)."),
    )
    user_search_base: str | None = Field(None, description="Base DN under which users are searched.")
    user_attribute: str = Field("uid", description="Attribute matched against the login name.")
    allowed_groups: list[str] = Field(
        default_factory=list, description="Group DNs allowed to log in (empty: any user found)."
    )
    start_tls: bool = Field(False, description="Upgrade a ldap:// connection with StartTLS.")

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^ldaps?://[^/\s]+", value):
            raise ValueError("must start with ldap:// or ldaps:// followed by a host")
        return _checked(value, lambda v: url_problem(v, ("ldap", "ldaps")))


class AuthSpec(Section):
    type: Literal["ldap", "dummy"] = Field(
        "ldap", description=("ldap: LDAP login for JupyterHub; dummy: one shared password (lab profile only).")
    )
    admins: list[str] = Field(default_factory=list, description="JupyterHub admin user names.")
    ldap: LdapSpec = Field(default_factory=LdapSpec, description="LDAP server settings (ldapauthenticator).")


def _pool_entry(value: str) -> str:
    """A CIDR or an a-b address range, as MetalLB's IPAddressPool accepts: a range is exactly two
    addresses of one family, lowest first (network_rules.pool_entry reads it so, and MetalLB refuses others)."""
    if "-" not in value:
        ipaddress.ip_network(value.strip(), strict=False)
        return value
    ends = [ipaddress.ip_address(part.strip()) for part in value.split("-")]  # ValueError: not an address
    if len(ends) != 2 or ends[0].version != ends[1].version or int(ends[0]) > int(ends[1]):
        raise ValueError(f"{value!r} is not a range FIRST-LAST of two addresses of one family, lowest first "
                         "(e.g. 10.0.0.240-10.0.0.250)")
    return value


PoolEntry = Annotated[str, AfterValidator(_pool_entry)]


class MetallbSpec(Section):
    enabled: bool = Field(False, description="Install MetalLB to give LoadBalancer Services addresses.")
    addresses: list[PoolEntry] = Field(
        default_factory=list, description=("Address pool: CIDRs (10.0.0.240/28) or ranges (10.0.0.240-10.0.0.250).")
    )


class IngressSpec(Section):
    enabled: bool = Field(True, description="Install an ingress controller.")
    class_name: str | None = Field(
        None,
        description=(
            "IngressClass name. Empty means the channel's controller's own name: nginx where the channel pins "
            "ingress-nginx (1.9 to 1.11), traefik where it pins Traefik (26.03 on)."
        ),
    )
    host: str | None = Field(None, description="DNS name for the JupyterHub and Grafana ingresses "
                             "(TensorBoard is JupyterHub's /services/tensorboard/).")

    @field_validator("host")
    @classmethod
    def _dns_name(cls, value: str | None) -> str | None:
        return _checked(value, lambda v: None if is_dns_name(v) else f"{preview(v)} is not a DNS name")


def _site_relative(value: str | None) -> str | None:
    """A file inside the site folder, named relative to it (the site is what an operator copies around)."""
    if value is None:
        return None
    if any(not c.isprintable() for c in value) or value.strip() == "":
        raise ValueError(f"{preview(value)} is not a file name")
    if value.startswith(("/", "~")) or ".." in value.replace("\\", "/").split("/"):
        raise ValueError(f"{preview(value)} must be a path relative to the site folder, without '..'")
    return value


class TlsSpec(Section):
    enabled: bool = Field(
        True,
        description=(
            "Serve every UI (JupyterHub, Grafana, TensorBoard) over HTTPS at spec.networking.ingress.host, "
            "and nothing over plain HTTP. Only the lab profile may turn it off."
        ),
    )
    cert_file: str | None = Field(
        None,
        description=(
            "Your certificate for spec.networking.ingress.host (PEM, leaf first, then the chain), relative to the "
            "site folder. Empty: cert-manager issues one from the site CA that `kfinstall init` generated "
            "(its certificate is site-ca.crt in the site folder: hand it to your users)."
        ),
    )
    key_file: str | None = Field(
        None, description="The PEM private key of certFile, relative to the site folder (keep it 0600)."
    )

    _check_files = field_validator("cert_file", "key_file")(classmethod(lambda cls, v: _site_relative(v)))


class NetworkingSpec(Section):
    metallb: MetallbSpec = Field(default_factory=MetallbSpec, description="MetalLB (bare metal LoadBalancer Services).")
    ingress: IngressSpec = Field(default_factory=IngressSpec, description="The ingress controller.")
    tls: TlsSpec = Field(default_factory=TlsSpec, description="HTTPS for every UI behind the ingress host.")


class GpuProfile(Section):
    name: str = Field(description="Profile name shown in the JupyterHub spawner.")
    gpus: int = Field(1, ge=0, le=16, description="nvidia.com/gpu limit.")
    cpu: float = Field(4, gt=0, description="CPU limit (cores).")
    memory: str = Field("16Gi", description="Memory limit.")
    _check_memory = field_validator("memory")(classmethod(lambda cls, v: _quantity(v)))


def _default_gpu_profiles() -> list[GpuProfile]:
    return [GpuProfile(name="cpu", gpus=0, cpu=2, memory="4Gi"), GpuProfile(name="1-gpu", gpus=1)]


class JupyterhubSpec(Section):
    enabled: bool = Field(True, description="JupyterHub (z2jh chart) with per-user volumes and GPU profiles.")
    storage_size: str = Field("10Gi", description="Size of each user's home volume.")
    profiles: list[GpuProfile] = Field(default_factory=_default_gpu_profiles, description="Spawner profiles.")
    values: dict[str, Any] = Field(
        default_factory=dict, description="Extra chart values merged over charts/jupyterhub/values.yaml."
    )
    _check_size = field_validator("storage_size")(classmethod(lambda cls, v: _quantity(v)))


class TrainingSpec(Section):
    enabled: bool = Field(True, description="training-operator v1 (TFJob, PyTorchJob) standalone.")


class ServedModel(Section):
    name: str = Field(description="Model name: /v1/models/<name>.")
    base_path: str | None = Field(None, description="Path on the models volume; default /models/<name>.")

    @field_validator("name")
    @classmethod
    def _dns(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError("must be a DNS label (lowercase letters, digits, '-')")
        return value

    @field_validator("base_path")
    @classmethod
    def _on_models_volume(cls, value: str | None) -> str | None:
        # TF Serving sees only the models volume (mounted at /models); the path is written into its
        # model config and read by a shell loop, so only plain path characters are accepted.
        if value is not None and not (_MODEL_PATH.fullmatch(value) and ".." not in value.split("/")):
            raise ValueError("must be a path under /models/ (the models volume) of letters, digits, '.', '_', "
                             "'-' and '/', without '..'")
        return value


class ServingSpec(Section):
    enabled: bool = Field(True, description="TensorFlow Serving Deployment, Service and HPA.")
    models: list[ServedModel] = Field(
        default_factory=lambda: [ServedModel(name="issue-summarization")],
        description="Models served (the demo's model by default).",
    )
    replicas: int = Field(1, ge=1, description="Minimum replicas (HPA floor).")
    max_replicas: int = Field(4, ge=1, description="HPA ceiling.")
    gpu: bool = Field(False, description="Serve with the -gpu image and one nvidia.com/gpu per replica.")
    models_storage_size: str = Field("20Gi", description="Size of the shared models volume.")
    _check_size = field_validator("models_storage_size")(classmethod(lambda cls, v: _quantity(v)))


class MonitoringSpec(Section):
    enabled: bool = Field(True, description="kube-prometheus-stack with Grafana and a GPU dashboard.")
    retention: str = Field("15d", description="Prometheus retention.")
    storage_size: str = Field("50Gi", description="Prometheus volume size.")
    _check_size = field_validator("storage_size")(classmethod(lambda cls, v: _quantity(v)))
    values: dict[str, Any] = Field(default_factory=dict, description="Extra kube-prometheus-stack values.")

    @field_validator("retention")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.fullmatch(value):
            raise ValueError(f"{preview(value)} is not a Prometheus duration such as 15d or 12h")
        return value


class TensorboardSpec(Section):
    enabled: bool = Field(True, description="A TensorBoard reading event logs from the shared volume, "
                          "behind JupyterHub's login at /services/tensorboard/ (needs JupyterHub).")
    logs_storage_size: str = Field("20Gi", description="Size of the shared training-logs volume.")
    _check_size = field_validator("logs_storage_size")(classmethod(lambda cls, v: _quantity(v)))


class ComponentsSpec(Section):
    jupyterhub: JupyterhubSpec = Field(default_factory=JupyterhubSpec, description="Notebooks for every user.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Distributed training jobs.")
    serving: ServingSpec = Field(default_factory=ServingSpec, description="Model serving with TensorFlow Serving.")
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec, description="Metrics and dashboards.")
    tensorboard: TensorboardSpec = Field(
        default_factory=TensorboardSpec, description="Training curves from shared event logs."
    )


class GcpSpec(Section):
    project: str | None = Field(None, description="GCP project id (required for the gcp profile).")
    region: str = Field("us-central1", description="Region of the GKE cluster and Filestore.")
    zone: str = Field("us-central1-a", description="Zone of the GPU node pool.")
    machine_type: str = Field("e2-standard-8", description="Machine type of the CPU node pool.")
    node_count: int = Field(2, ge=1, description="Nodes in the CPU pool.")
    gpu_machine_type: str = Field("n1-standard-8", description="Machine type of the GPU node pool.")
    gpu_type: str = Field("nvidia-tesla-t4", description="Accelerator type of the GPU pool.")
    gpu_count: int = Field(1, ge=1, description="GPUs per GPU node.")
    gpu_node_count: int = Field(1, ge=0, description="Nodes in the GPU pool.")
    filestore_tier: Literal["BASIC_HDD", "BASIC_SSD", "ZONAL", "REGIONAL"] = Field(
        "BASIC_HDD", description="Filestore tier for RWX volumes."
    )
    filestore_capacity_gb: int = Field(1024, ge=1024, description="Filestore capacity (GB).")


class SshSpec(Section):
    host_key_checking: Literal["accept-new", "strict", "off"] = Field(
        "accept-new",
        description=(
            "How SSH host keys are checked, against known_hosts in the state directory. accept-new: a host's "
            "key is pinned on first contact (preflight prints its fingerprint) and a changed key stops the run; "
            "strict: a host whose key is not pinned yet stops the run too; off: nothing is checked (a warning "
            "is printed and recorded on every run)."
        ),
    )


class Spec(Section):
    profile: str = Field(description="One of bare-metal, private-cloud, private-gpu, gcp, lab.")
    channel: str = Field(description="Release channel (kfinstall channels lists them).")
    ssh: SshSpec = Field(default_factory=SshSpec, description="How kfinstall's SSH connections trust the hosts.")
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec, description="The kubeadm cluster on your hosts.")
    containerd: ContainerdSpec = Field(
        default_factory=ContainerdSpec, description="The container runtime on every node."
    )
    gpu: GpuSpec = Field(
        default_factory=GpuSpec, description="NVIDIA driver, container toolkit and Kubernetes GPU stack."
    )
    storage: StorageSpec = Field(
        default_factory=StorageSpec, description="Shared storage built on the hosts and its StorageClasses."
    )
    auth: AuthSpec = Field(default_factory=AuthSpec, description="How users log in to JupyterHub.")
    networking: NetworkingSpec = Field(
        default_factory=NetworkingSpec, description="LoadBalancer addresses and ingress."
    )
    components: ComponentsSpec = Field(
        default_factory=ComponentsSpec, description="The platform services; each can be turned off."
    )
    gcp: GcpSpec = Field(default_factory=GcpSpec, description="GKE settings, used only by the gcp profile.")


class Metadata(Section):
    name: str = Field(description="Cluster name: a DNS label; names the state directory and the Pulumi stack.")

    @field_validator("name")
    @classmethod
    def _dns(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError("must be a DNS label: lowercase letters, digits and '-', at most 63 characters")
        return value


class ClusterFile(Section):
    """The whole of kfinstall.yaml after merging profile defaults and --set values."""

    api_version: Literal["kfinstall.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Cluster"]
    metadata: Metadata
    spec: Spec
