"""A kubelet pod-resources gRPC server on a unix socket and a Kubernetes API server on HTTP,
real servers speaking the published protocols, with state a test changes as it goes."""

import json
import shutil
import tempfile
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc

from metering.collectors.podresources import api_pb2, api_pb2_grpc


class FakeKubelet(api_pb2_grpc.PodResourcesListerServicer):
    """``pods``: {(namespace, pod): {container: {resource name: [device ids]}}}."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, dict[str, list[str]]]] = {}
        self.calls = 0
        self.down = False
        self.folder = tempfile.mkdtemp(prefix="kubelet-")  # unix socket paths must be short
        self.socket = str(Path(self.folder) / "kubelet.sock")
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"unix://{self.socket}")

    def List(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        self.calls += 1
        if self.down:
            context.abort(grpc.StatusCode.UNAVAILABLE, "kubelet restarting")
        return api_pb2.ListPodResourcesResponse(
            pod_resources=[
                api_pb2.PodResources(
                    name=pod,
                    namespace=namespace,
                    containers=[
                        api_pb2.ContainerResources(
                            name=container,
                            devices=[
                                api_pb2.ContainerDevices(resource_name=name, device_ids=ids)
                                for name, ids in resources.items()
                            ],
                            cpu_ids=[2, 3],
                        )
                        for container, resources in containers.items()
                    ],
                )
                for (namespace, pod), containers in sorted(self.pods.items())
            ]
        )

    def start(self) -> "FakeKubelet":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(None).wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class FakeKubeApi:
    """``GET /api/v1/namespaces/{name}`` and ``GET /api/v1/nodes/{name}``, as the API server
    answers them (a Status object with 404 for what does not exist)."""

    def __init__(self) -> None:
        self.namespaces: dict[str, dict[str, str]] = {}  # name -> labels
        self.nodes: dict[str, dict[str, str]] = {}
        self.requests: list[str] = []
        self.down = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeKubeApi":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                api.requests.append(self.path)
                if api.down:
                    return self._reply(503, _status(503, "ServiceUnavailable", "etcd down"))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 4 and parts[:3] == ["api", "v1", "namespaces"]:
                    kind, found = "Namespace", api.namespaces.get(parts[3])
                elif len(parts) == 4 and parts[:3] == ["api", "v1", "nodes"]:
                    kind, found = "Node", api.nodes.get(parts[3])
                else:
                    return self._reply(404, _status(404, "NotFound", "no such path"))
                if found is None:
                    return self._reply(404, _status(404, "NotFound", f"{parts[3]} not found"))
                body = {
                    "apiVersion": "v1",
                    "kind": kind,
                    "metadata": {"name": parts[3], "uid": f"uid-{parts[3]}", "labels": found},
                    "spec": {},
                    "status": {"phase": "Active"} if kind == "Namespace" else {},
                }
                self._reply(200, body)

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
