"""The demo's Python: the client against a stand-in TF Serving, and train.py where TensorFlow exists."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from stackhelpers import REPO

DEMO = REPO / "examples" / "issue-summarization"


def _load_client():
    spec = importlib.util.spec_from_file_location("demo_client", DEMO / "client.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_client_posts_instances_and_reads_predictions() -> None:
    received: dict[str, object] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's method name
            received["path"] = self.path
            received["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            payload = json.dumps({"predictions": ["Export button 500 error"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    titles = _load_client().predict(f"http://127.0.0.1:{server.server_port}", "issue-summarization", ["body"])
    server.server_close()
    assert titles == ["Export button 500 error"]
    assert received == {"path": "/v1/models/issue-summarization:predict", "body": {"instances": ["body"]}}


def test_train_exports_a_serving_signature(tmp_path: Path) -> None:
    if importlib.util.find_spec("tensorflow") is None:
        reason = "TensorFlow is not installed here: train.py runs in the channel's TensorFlow image (TFJob)"
        print(reason)
        pytest.skip(reason)
    args = [sys.executable, str(DEMO / "train.py"), f"--data={DEMO / 'sample_issues.csv'}",
            f"--export={tmp_path / 'models'}", f"--logs={tmp_path / 'logs'}", "--epochs=2", "--units=16"]
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    import tensorflow as tf

    (version,) = list((tmp_path / "models").iterdir())
    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    titles = signature(body=tf.constant(["The login page crashes when login page is empty."]))["title"]
    assert titles.shape == (1,) and titles.dtype == tf.string
