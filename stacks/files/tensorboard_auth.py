"""TensorBoard behind JupyterHub's login: the authenticating reverse proxy in TensorBoard's pod.

kfinstall ships this file in a ConfigMap (stacks/tensorboard.py) and runs it in z2jh's hub image,
which carries jupyterhub and tornado at the versions the hub itself runs. It is the pod's only open
port; TensorBoard listens on 127.0.0.1. Every request needs a JupyterHub login before it is
forwarded: browsers go through the hub's OAuth (jupyterhub.services.auth.HubOAuth, the reference
implementation for services), API clients send a hub token. The hub decides who may enter: the
token must carry the scope in JUPYTERHUB_OAUTH_ACCESS_SCOPES (access:services!service=tensorboard).
The login cookie and tokens are never forwarded to TensorBoard.

Environment, with JupyterHub's own names for a service (docs/source/reference/services.md):
JUPYTERHUB_API_TOKEN (the service's token, also its OAuth client secret), JUPYTERHUB_API_URL,
JUPYTERHUB_CLIENT_ID, JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_OAUTH_CALLBACK_URL,
JUPYTERHUB_OAUTH_ACCESS_SCOPES (a JSON list).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import httpclient, httputil, ioloop, web
from tornado.httpserver import HTTPServer

REQUIRED_ENV = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_SERVICE_PREFIX",
                "JUPYTERHUB_OAUTH_CALLBACK_URL", "JUPYTERHUB_OAUTH_ACCESS_SCOPES")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade"})
# The hub login (its cookie, a token) stays here: TensorBoard never receives a credential.
NOT_FORWARDED = HOP_BY_HOP | {"host", "cookie", "authorization", "content-length"}
NOT_RETURNED = HOP_BY_HOP | {"content-length", "set-cookie"}
UPSTREAM_TIMEOUT = 300.0  # seconds: large runs make TensorBoard's first answers slow
log = logging.getLogger("tensorboard-auth")


class ConfigError(Exception):
    """A setting the proxy cannot start without; the message names it, never a value."""


def hub_auth(env: Mapping[str, str]) -> Any:
    """HubOAuth configured from the environment, with every setting given explicitly."""
    missing = [name for name in REQUIRED_ENV if not env.get(name)]
    if missing:
        raise ConfigError(f"missing environment variables: {', '.join(missing)}")
    try:
        scopes = json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"])
    except ValueError:
        scopes = None
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise ConfigError("JUPYTERHUB_OAUTH_ACCESS_SCOPES must be a JSON list of scope names")
    return HubOAuth(
        api_token=env["JUPYTERHUB_API_TOKEN"], api_url=env["JUPYTERHUB_API_URL"],
        oauth_client_id=env["JUPYTERHUB_CLIENT_ID"], base_url=env["JUPYTERHUB_SERVICE_PREFIX"],
        oauth_redirect_uri=env["JUPYTERHUB_OAUTH_CALLBACK_URL"], access_scopes=set(scopes),
    )


class CallbackHandler(HubOAuthCallbackHandler):
    """Completes the hub's OAuth: trades the code for a token and sets the login cookie."""

    def initialize(self, auth: Any) -> None:
        self.hub_auth = auth


class ProxyHandler(HubOAuthenticated, web.RequestHandler):
    """Forwards an authenticated request to TensorBoard; without a login: GET goes to the hub, the rest is 403."""

    def initialize(self, auth: Any, upstream: str) -> None:
        self.hub_auth = auth
        self.upstream = upstream

    def compute_etag(self) -> None:
        return None  # TensorBoard's own ETag passes through; tornado must not answer 304 for it

    def check_xsrf_cookie(self) -> None:
        """Accept the login cookie on same-origin requests without JupyterHub's _xsrf token.

        JupyterHub (>= 4.1) wants its _xsrf token on every cookie-authenticated request that is not
        a plain page view, including the fetch() calls TensorBoard's frontend makes, which cannot
        send it. The browser's Sec-Fetch-Site header stands in for it: cross-site requests still
        need the token, so another site cannot use a user's login here. Same-origin pages (other
        users' servers behind the same hub) can read nothing through it that their owner cannot
        read directly: every user sees the same TensorBoard, and TensorBoard changes nothing.
        """
        if self.request.headers.get("Sec-Fetch-Site") == "same-origin":
            return
        super().check_xsrf_cookie()

    @web.authenticated
    async def get(self) -> None:
        await self._forward()

    @web.authenticated
    async def post(self) -> None:
        await self._forward()

    async def _forward(self) -> None:
        headers = httputil.HTTPHeaders()
        for name, value in self.request.headers.get_all():
            if name.lower() not in NOT_FORWARDED:
                headers.add(name, value)
        request = httpclient.HTTPRequest(
            self.upstream + self.request.uri, method=self.request.method, headers=headers,
            body=self.request.body if self.request.method == "POST" else None,
            follow_redirects=False, decompress_response=False, request_timeout=UPSTREAM_TIMEOUT)
        response = await _fetch(request)
        if response is None:
            raise web.HTTPError(502, "TensorBoard is not answering")
        self.set_status(response.code, response.reason)
        seen: set[str] = set()
        for name, value in response.headers.get_all():
            key = name.lower()
            if key in NOT_RETURNED:
                continue
            if key in seen:
                self.add_header(name, value)
            else:
                self.set_header(name, value)  # replaces tornado's default Content-Type and Server
                seen.add(key)
        if response.body:
            self.write(response.body)


async def _fetch(request: httpclient.HTTPRequest) -> httpclient.HTTPResponse | None:
    """TensorBoard's answer, whatever its status; None when there is none (refused, timed out)."""
    try:
        return await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
    except (OSError, httpclient.HTTPClientError):  # raise_error=False still raises these (tornado >= 6)
        return None


class ReadyHandler(web.RequestHandler):
    """Readiness: TensorBoard answers HTTP on its loopback port (any status below 500)."""

    def initialize(self, upstream: str, path: str) -> None:
        self.target = upstream + path

    async def get(self) -> None:
        response = await _fetch(httpclient.HTTPRequest(self.target, request_timeout=5))
        ready = response is not None and response.code < 500
        self.set_status(200 if ready else 503)
        self.finish("ready\n" if ready else "TensorBoard is not answering\n")


def make_app(auth: Any, upstream: str) -> web.Application:
    """Routes: the OAuth callback and everything under the service prefix; /readyz for the kubelet.

    The hub's proxy forwards only /services/<name>/..., so /readyz is not reachable through it.
    """
    prefix = auth.base_url  # always ends with "/" (HubAuth._add_slash)
    callback = urlsplit(auth.oauth_redirect_uri).path
    upstream = upstream.rstrip("/")
    return web.Application(
        [
            (re.escape(prefix.rstrip("/")), web.RedirectHandler, {"url": prefix}),
            (re.escape(callback), CallbackHandler, {"auth": auth}),
            (re.escape(prefix) + ".*", ProxyHandler, {"auth": auth, "upstream": upstream}),
            ("/readyz", ReadyHandler, {"upstream": upstream, "path": prefix}),
        ],
        # Signs the login cookie. A new key per start only means one more (silent) OAuth round trip.
        cookie_secret=os.urandom(32),
    )


def main(argv: list[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port to listen on, on every address")
    parser.add_argument("--upstream", required=True, help="TensorBoard's loopback URL, e.g. http://127.0.0.1:6006")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        auth = hub_auth(env)
    except ConfigError as exc:
        print(f"tensorboard-auth: {exc}", file=sys.stderr)
        return 2
    # Only the hub's proxy reaches this port (NetworkPolicy), so its X-Forwarded-* headers are trusted.
    HTTPServer(make_app(auth, args.upstream), xheaders=True).listen(args.port)
    log.info("serving %s on port %d for %s", auth.base_url, args.port, args.upstream)
    ioloop.IOLoop.current().start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
