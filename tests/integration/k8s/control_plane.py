"""A real Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager on 127.0.0.1.

Binaries come from $SLIPWAY_K8S_BIN (built by infra/ci/k8s.sh: 1.20.2 from Debian's source
package, etcd linked beside them). Auth is a static admin token (group system:masters) and RBAC
is enforced, so ServiceAccount tokens get exactly what their Roles grant. No scheduler and no
kubelet: FakeKubelet (fake_kubelet.py) binds pods and reports them Running/Ready.

The controller-manager also runs the HPA controller (1 s sync, 5 s scale-down stabilization
instead of 5 min, so a test sees it act) and the Job controller. The apiserver's aggregation
layer is configured (a front-proxy CA and client certificate made here), so a test-only metrics
adapter (metrics_adapter.py) can serve custom.metrics.k8s.io through an APIService.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from slipway.ports import free_port

DEFAULT_BIN = Path("/var/cache/slipway/k8s/v1.20.2")
CONTROLLERS = (
    "deployment,replicaset,garbagecollector,namespace,serviceaccount,serviceaccount-token,endpoint,endpointslice,"
    "horizontalpodautoscaling,job"
)
HPA_SYNC_S = 1
HPA_DOWNSCALE_STABILIZATION_S = 5
FRONT_PROXY_CLIENT = "front-proxy-client"


def k8s_bin() -> Path:
    """Where the binaries are: $SLIPWAY_K8S_BIN, else the CI cache path."""
    return Path(os.environ.get("SLIPWAY_K8S_BIN") or DEFAULT_BIN)


def missing_binaries() -> list[str]:
    """What is missing to start a control plane (empty when everything is there)."""
    missing = [
        name for name in ("kube-apiserver", "kube-controller-manager") if not (k8s_bin() / name).is_file()
    ]
    if not (k8s_bin() / "etcd").exists() and shutil.which("etcd") is None:
        missing.append("etcd")
    return missing


def _front_proxy_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A front-proxy CA and a client certificate it signed (EC P-256): (ca.crt, client.crt, client.key)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    cert, key, csr = folder / "client.crt", folder / "client.key", folder / "client.csr"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=front-proxy-ca"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={FRONT_PROXY_CLIENT}"],
        [
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "2",
        ],
    ):
        subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True)
    return ca, cert, key


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver + kube-controller-manager; `host`, `ca_file` and `admin_token` reach it."""

    workdir: Path
    host: str = ""
    ca_file: Path = Path()
    admin_token: str = "slipway-test-admin-token"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, *, timeout_s: float = 90.0) -> None:
        """Start the three processes and wait until the API is ready and `default` has its ServiceAccount."""
        bin_dir, w = k8s_bin(), self.workdir
        etcd = str(bin_dir / "etcd") if (bin_dir / "etcd").exists() else str(shutil.which("etcd"))
        (w / "certs").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["openssl", "genrsa", "-out", str(w / "sa.key"), "2048"], check=True, capture_output=True
        )
        subprocess.run(
            ["openssl", "rsa", "-in", str(w / "sa.key"), "-pubout", "-out", str(w / "sa.pub")],
            check=True,
            capture_output=True,
        )
        (w / "tokens.csv").write_text(f'{self.admin_token},slipway-admin,1,"system:masters"\n')
        proxy_ca, proxy_cert, proxy_key = _front_proxy_certs(w / "front-proxy")

        etcd_port, api_port = free_port(), free_port()
        self._spawn(
            "etcd",
            [
                etcd,
                f"--data-dir={w / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{free_port()}",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={w / 'certs'}",
                f"--token-auth-file={w / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={w / 'sa.pub'}",
                f"--service-account-signing-key-file={w / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount",
                # the aggregation layer: APIServices (the test metrics adapter) are proxied with this client cert
                f"--requestheader-client-ca-file={proxy_ca}",
                f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-username-headers=X-Remote-User",
                f"--proxy-client-cert-file={proxy_cert}",
                f"--proxy-client-key-file={proxy_key}",
                "--v=0",
            ],
        )
        self.host = f"https://127.0.0.1:{api_port}"
        self.ca_file = w / "certs" / "apiserver.crt"
        deadline = time.monotonic() + timeout_s
        self._wait(lambda http: http.get("/readyz").text == "ok", "kube-apiserver /readyz", deadline)

        kubeconfig = self.write_kubeconfig(w / "admin.kubeconfig", token=self.admin_token)
        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--port=0",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={w / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_S}s",
                f"--horizontal-pod-autoscaler-downscale-stabilization={HPA_DOWNSCALE_STABILIZATION_S}s",
            ],
        )
        self._wait(
            lambda http: http.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200,
            "the default ServiceAccount",
            deadline,
        )

    def http(self, *, token: str | None = None) -> httpx.Client:
        """An httpx client on the API server with a bearer token (the admin's by default)."""
        return httpx.Client(
            base_url=self.host,
            verify=str(self.ca_file),
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30.0,
        )

    def write_kubeconfig(self, path: Path, *, token: str, namespace: str = "default") -> Path:
        """A kubeconfig for this API server with a bearer token (what `KubernetesTarget.from_kubeconfig` reads)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "test", "cluster": {"server": self.host, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [
                {"name": "test", "context": {"cluster": "test", "user": "user", "namespace": namespace}}
            ],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def stop(self) -> None:
        """Stop every process (controller-manager, apiserver, then etcd)."""
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines of one process's log."""
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _spawn(self, name: str, argv: list[str]) -> None:
        """Start one process, its output in <workdir>/<name>.log."""
        log = (self.workdir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()

    def _wait(self, ready: Callable[[httpx.Client], bool], what: str, deadline: float) -> None:
        """Poll `ready(http)` until True; RuntimeError with the logs when a process died or time ran out."""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                if self.ca_file.exists():
                    with self.http() as http:
                        if ready(http):
                            return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        logs = "\n".join(f"--- {n}:\n{self.log_tail(n)}" for n in self.procs)
        raise RuntimeError(f"timed out waiting for {what}\n{logs}")
