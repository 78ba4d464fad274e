"""A stand-in for a Kubernetes API server, for `helm template --dry-run=server`: it answers the
discovery a `lookup` makes and GETs of the objects it holds (404 for the rest). Helm needs a
cluster for `lookup` and this machine has none; tests that use it say so in their names.
(`helm template` takes the cluster's APIs from `--api-versions` even then.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Manifest = dict[str, Any]

# What the chart looks up; the fake lists these resources.
CORE_RESOURCES = [("secrets", "Secret"), ("namespaces", "Namespace")]
GROUP_RESOURCES = {"apps/v1": [("deployments", "Deployment")]}


def _resource_list(group_version: str, resources: Sequence[tuple[str, str]]) -> Manifest:
    return {
        "kind": "APIResourceList",
        "groupVersion": group_version,
        "resources": [
            {"name": name, "namespaced": True, "kind": kind, "verbs": ["get", "list"]}
            for name, kind in resources
        ],
    }


def _object_path(manifest: Manifest, namespace: str) -> str:
    api_version = manifest["apiVersion"]
    plural = manifest["kind"].lower() + "s"
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}/{manifest['metadata']['name']}"


@contextmanager
def fake_apiserver(namespace: str, objects: Sequence[Manifest] = ()) -> Iterator[str]:
    """Serve on a free local port; yields the URL for `--kube-apiserver`."""
    served = list(GROUP_RESOURCES)
    documents: dict[str, Manifest] = {
        "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0"},
        "/api": {"kind": "APIVersions", "versions": ["v1"]},
        "/api/v1": _resource_list("v1", CORE_RESOURCES),
        "/apis": {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": gv.split("/")[0],
                    "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                    "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]},
                }
                for gv in served
            ],
        },
    }
    for gv, resources in GROUP_RESOURCES.items():
        documents[f"/apis/{gv}"] = _resource_list(gv, resources)
    for manifest in objects:
        documents[_object_path(manifest, namespace)] = manifest

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            document = documents.get(self.path.split("?")[0])
            status = 200 if document is not None else 404
            if document is None:
                document = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                }
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
