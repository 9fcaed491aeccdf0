"""Ask TF Serving for an issue title: POST /v1/models/<name>:predict {"instances": ["<body>"]}.

    python client.py --url http://localhost:8501 "Clicking save with an empty name crashes the app ..."
    echo "body text" | python client.py --url http://tf-serving.kubeflow-user.svc:8501

Standard library only, so it runs from any pod or laptop with Python 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request


def predict(url: str, model: str, bodies: list[str], timeout: float = 30.0) -> list[str]:
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/models/{model}:predict",
        data=json.dumps({"instances": bodies}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - operator-given URL
        predictions = json.load(response)["predictions"]
    # One named output: TF Serving returns the values directly; several: a dict per instance.
    return [p["title"] if isinstance(p, dict) else p for p in predictions]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Summarize a GitHub issue body into a title via TF Serving.")
    parser.add_argument("body", nargs="?", help="issue body (default: read stdin)")
    parser.add_argument("--url", default="http://localhost:8501", help="TF Serving REST endpoint")
    parser.add_argument("--model", default="issue-summarization", help="model name in TF Serving")
    args = parser.parse_args(argv)
    body = args.body if args.body is not None else sys.stdin.read()
    if not body.strip():
        parser.error("empty issue body")
    print(predict(args.url, args.model, [body])[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
