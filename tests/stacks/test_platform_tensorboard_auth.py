"""TensorBoard sits behind JupyterHub's login (issue 12, item 9): rendered objects and the login proxy itself.

Before: TensorBoard ran with --bind_all behind a plain Service and its own Ingress, so anyone who
could reach the ingress host (or any pod) read every training run without logging in. Now it listens
on 127.0.0.1 and the pod's only open port is stacks/files/tensorboard_auth.py, which uses
JupyterHub's own service OAuth (jupyterhub.services.auth.HubOAuth) and is registered as the hub
service `tensorboard`, reached at /services/tensorboard/ through the hub's proxy.

Upstream facts relied on (jupyterhub/jupyterhub and jupyterhub/zero-to-jupyterhub-k8s, at the tags
the channels pin: z2jh 3.3.8, 4.2.0, 4.3.5, 4.4.0 bundling JupyterHub 4.1.6, 5.3.0, 5.4.6, 5.5.0):
- jupyterhub/app.py (init_services / _init_service at 4.1.6 and 5.5.0): a service with `url` gets a
  proxy route at /services/<name>/ and an OAuth client `service-<name>` whose secret is its
  api_token; unknown service keys raise "No such service field".
- jupyterhub/services/service.py: the input traits of a service (SERVICE_FIELDS below) and the
  default oauth_redirect_uri /services/<name>/oauth_callback.
- jupyterhub/roles.py get_default_roles: the `user` role has only the scope `self` at 4.1.6, 5.3.0
  and 5.5.0, so users need `access:services!service=<name>` (docs/source/rbac/scopes.md) added.
- z2jh jupyterhub/files/hub/jupyterhub_config.py: hub.services.<key> becomes a JupyterHub service
  named <key>; hub.loadRoles.<key> a role named <key>.
- z2jh jupyterhub/templates/{hub,proxy}/netpol.yaml and _helpers.tpl: hub and proxy pods carry
  component/app/release match labels; the hub admits pods of other namespaces only through
  hub.networkPolicy.ingress; the proxy's egress rules are extended by proxy.chp.networkPolicy.egress.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, REPO, SHARED_SCHEMAS, containers

from installer.config.problems import InvalidConfig
from installer.config.secrets import generate_secrets
from installer.render import SECRET_SIG_KEY, plain
from installer.versions import parse

try:  # the login proxy's tests need jupyterhub (and the tornado it brings): the [test] extra installs it
    import jupyterhub  # noqa: F401
    from tornado import httpclient, web
    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop
    from tornado.testing import bind_unused_port
except ImportError:  # pragma: no cover - only without the test extra
    HAVE_JUPYTERHUB = False
else:
    HAVE_JUPYTERHUB = True
NO_JUPYTERHUB = "jupyterhub is not installed (pip install -e '.[test]')"
needs_jupyterhub = pytest.mark.skipif(not HAVE_JUPYTERHUB, reason=NO_JUPYTERHUB)

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
NAMESPACE = "kubeflow-user"
PREFIX = "/services/tensorboard/"
ACCESS_SCOPE = "access:services!service=tensorboard"
# jupyterhub/services/service.py: traits tagged input=True, identical at 4.1.6, 5.3.0, 5.4.6 and 5.5.0.
SERVICE_FIELDS = {"admin", "api_token", "command", "cwd", "display", "environment", "info", "name",
                  "oauth_client_allowed_scopes", "oauth_client_id", "oauth_no_confirm", "oauth_redirect_uri",
                  "oauth_roles", "url", "user"}
# z2jh jupyterhub.matchLabels for release `jupyterhub` (legacy labels, on the pods at 3.3.8 and 4.x).
HUB_POD = {"app": "jupyterhub", "release": "jupyterhub", "component": "hub"}
PROXY_POD = {"app": "jupyterhub", "release": "jupyterhub", "component": "proxy"}
SCRIPT = REPO / "stacks" / "files" / "tensorboard_auth.py"


# ---------------------------------------------------------------- rendered objects, every profile x channel

def _objects(rendered: Any) -> list[dict[str, Any]]:
    return [plain(r.inputs) for r in rendered.kubernetes_objects()]


def _one(rendered: Any, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in _objects(rendered) if o["kind"] == kind and o["metadata"]["name"] == name
             and o["metadata"].get("namespace") == NAMESPACE]
    assert len(found) == 1, f"expected one {kind} {NAMESPACE}/{name}, found {len(found)}"
    return found[0]


def _hub_release(rendered: Any) -> Any:
    return next(h for h in rendered.helm() if plain(h.inputs)["name"] == "jupyterhub")


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_tensorboard_listens_on_loopback_behind_the_login_proxy(renders, profile: str, channel: str) -> None:
    """TensorBoard binds 127.0.0.1 and publishes no port; the Service leads only to the login proxy,
    which runs the shipped script in the channel's pinned hub image; no Ingress reaches TensorBoard."""
    rendered = renders.get(profile, channel)
    deployment = _one(rendered, "Deployment", "tensorboard")
    pod = deployment["spec"]["template"]["spec"]
    by_name = _by_name(containers(deployment))
    assert set(by_name) == {"tensorboard", "hub-auth"}
    board, auth = by_name["tensorboard"], by_name["hub-auth"]
    assert "--host=127.0.0.1" in board["command"] and "--bind_all" not in board["command"]
    # TensorBoard serves under the prefix the hub's proxy forwards unchanged (/services/tensorboard/...).
    assert f"--path_prefix={PREFIX.rstrip('/')}" in board["command"]
    assert not board.get("ports")
    assert auth["image"] == rendered.cfg.release.images["tensorboard-auth"].ref
    assert "--upstream=http://127.0.0.1:6006" in auth["command"] and "--port=6006" in board["command"]
    # The script comes from the ConfigMap, byte for byte the file kfinstall ships.
    configmap = _one(rendered, "ConfigMap", "tensorboard-hub-auth")
    assert configmap["data"]["tensorboard_auth.py"] == SCRIPT.read_text(encoding="utf-8")
    mounts = {m["name"]: m["mountPath"] for m in auth["volumeMounts"]}
    volumes = _by_name(pod["volumes"])
    assert volumes["auth-script"]["configMap"]["name"] == "tensorboard-hub-auth"
    assert f"{mounts['auth-script']}/tensorboard_auth.py" in auth["command"]
    # The Service's every port resolves to the proxy's container port, never to TensorBoard's.
    service = _one(rendered, "Service", "tensorboard")
    proxy_ports = {p["name"]: p["containerPort"] for p in auth["ports"]}
    for port in service["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        assert proxy_ports.get(target, target) in proxy_ports.values(), port
    assert not [o for o in _objects(rendered) if o["kind"] == "Ingress" and o["metadata"].get("namespace") == NAMESPACE]
    assert pod.get("automountServiceAccountToken") is False


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_only_the_hub_proxy_and_hub_reach_the_pod(renders, profile: str, channel: str) -> None:
    """Ingress to the TensorBoard pod: from z2jh's proxy pod (users) and hub pod (its periodic
    service health check, app.py check_services_health) only, on the login proxy's port only.
    Egress: the hub's API port and DNS."""
    rendered = renders.get(profile, channel)
    deployment = _one(rendered, "Deployment", "tensorboard")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    proxy_port = _by_name(containers(deployment))["hub-auth"]["ports"][0]["containerPort"]
    policy = _one(rendered, "NetworkPolicy", "tensorboard")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    hub_ns = {"kubernetes.io/metadata.name": "jupyterhub"}
    sources = [(peer["namespaceSelector"]["matchLabels"], peer["podSelector"]["matchLabels"])
               for rule in policy["ingress"] for peer in rule["from"]]
    assert sorted(sources, key=str) == sorted([(hub_ns, PROXY_POD), (hub_ns, HUB_POD)], key=str)
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [proxy_port]
    egress = {json.dumps(rule, sort_keys=True) for rule in policy["egress"]}
    assert egress == {
        json.dumps({"to": [{"namespaceSelector": {"matchLabels": hub_ns}, "podSelector": {"matchLabels": HUB_POD}}],
                    "ports": [{"port": 8081, "protocol": "TCP"}]}, sort_keys=True),
        json.dumps({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}, sort_keys=True),
    }


def _under_secret(value: Any, *keys: str) -> bool:
    """The value at `keys` is inside a Pulumi secret (the flag propagates to enclosing inputs)."""
    for key in (*keys, None):
        if isinstance(value, dict) and SECRET_SIG_KEY in value:
            return True
        if key is None or not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return False


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_hub_registers_the_service_and_every_user_may_open_it(renders, profile: str, channel: str) -> None:
    """hub.services.tensorboard points at the Service; its api_token (the OAuth client secret) is
    the generated secret, a Pulumi secret both in the hub's values and in the proxy's Secret; the
    user role keeps `self` and gains the service's access scope on the chart's JupyterHub major."""
    rendered = renders.get(profile, channel)
    release = _hub_release(rendered)
    values = plain(release.inputs)["values"]
    service = values["hub"]["services"]["tensorboard"]
    assert set(service) <= SERVICE_FIELDS
    k8s_service = _one(rendered, "Service", "tensorboard")
    assert service["url"] == f"http://tensorboard.{NAMESPACE}.svc:{k8s_service['spec']['ports'][0]['port']}"
    token = rendered.cfg.secrets.jupyterhub_tensorboard_api_token.get_secret_value()
    assert len(token) == 64 and service["api_token"] == token
    assert _under_secret(release.inputs["values"], "hub", "services", "tensorboard", "api_token")
    secret_record = next(r for r in rendered.kubernetes_objects()
                         if r.inputs["kind"] == "Secret" and r.inputs["metadata"]["name"] == "tensorboard-hub-auth")
    assert _under_secret(secret_record.inputs["stringData"], "api-token")
    assert plain(secret_record.inputs)["stringData"]["api-token"] == token
    # The proxy's OAuth settings are JupyterHub's defaults for this service, so hub and proxy agree.
    env = {e["name"]: e for e in _by_name(containers(_one(rendered, "Deployment", "tensorboard")))["hub-auth"]["env"]}
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "tensorboard-hub-auth",
                                                                        "key": "api-token"}
    assert env["JUPYTERHUB_CLIENT_ID"]["value"] == "service-tensorboard"
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == PREFIX
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"]["value"] == f"{PREFIX}oauth_callback"
    assert json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]["value"]) == [ACCESS_SCOPE]
    # z2jh names the hub Service `hub` (fullnameOverride "") on port 8081, hub.baseUrl "/".
    assert env["JUPYTERHUB_API_URL"]["value"] == "http://hub.jupyterhub.svc:8081/hub/api"
    hub_major = parse(rendered.cfg.release.charts["jupyterhub"].app_version)[0]
    assert hub_major in {4, 5}, "check roles.py of this JupyterHub major before trusting the role below"
    role = values["hub"]["loadRoles"]["user"]
    assert {"self", ACCESS_SCOPE} <= set(role["scopes"])
    assert "users" not in role  # membership stays with JupyterHub (every user has the role)


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_z2jh_network_policies_let_proxy_and_hub_talk_to_it(renders, profile: str, channel: str) -> None:
    """The hub admits the login proxy's pod (token checks, OAuth code exchange) on its `http` port;
    the proxy's and the hub's egress name the TensorBoard pod and port, so the path does not depend
    on z2jh's privateIPs rule matching pod addresses."""
    rendered = renders.get(profile, channel)
    values = plain(_hub_release(rendered).inputs)["values"]
    tensorboard_pod = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
                       "podSelector": {"matchLabels": {"app.kubernetes.io/name": "tensorboard"}}}
    assert {"from": [tensorboard_pod], "ports": [{"port": "http"}]} in values["hub"]["networkPolicy"]["ingress"]
    to_pod = {"to": [tensorboard_pod], "ports": [{"port": 8000, "protocol": "TCP"}]}
    assert to_pod in values["proxy"]["chp"]["networkPolicy"]["egress"]
    assert to_pod in values["hub"]["networkPolicy"]["egress"]


def test_the_hub_fragment_extends_rules_set_before_it(renders) -> None:
    """Helm and kfinstall's merge replace lists, so the fragment is added rule by rule: a rule the hub's
    values already carry stays, maps beside it stay, and the service joins other services."""
    from stacks import tensorboard

    cfg = renders.config("lab", CHANNELS[-1])
    earlier = {"hub": {"networkPolicy": {"egress": [{"ports": [{"port": 636}]}]}, "services": {"other": {}}},
               "proxy": {"chp": {"networkPolicy": {"egress": [{"ports": [{"port": 1}]}]}}, "secretToken": "x"}}
    values = plain(tensorboard.with_hub_service(earlier, cfg))
    assert values["hub"]["networkPolicy"]["egress"][0] == {"ports": [{"port": 636}]}
    assert len(values["hub"]["networkPolicy"]["egress"]) == 2
    assert values["proxy"]["chp"]["networkPolicy"]["egress"][0] == {"ports": [{"port": 1}]}
    assert values["proxy"]["secretToken"] == "x" and set(values["hub"]["services"]) == {"other", "tensorboard"}
    assert earlier["hub"]["networkPolicy"]["egress"] == [{"ports": [{"port": 636}]}]  # the input is not changed


@pytest.mark.parametrize("channel", CHANNELS)
def test_login_proxy_image_is_the_pinned_charts_hub_image(channel: str) -> None:
    """The proxy runs the hub image of the channel's z2jh chart: hub.image.name in the chart's
    values.yaml, tagged with the chart version (in git the tag is chartpress' placeholder; the
    published chart sets it to its version)."""
    from installer.releases import load_release

    release = load_release(channel)
    version = release.charts["jupyterhub"].version
    pin = release.images["tensorboard-auth"]
    assert pin.tag == version
    defaults = SHARED_SCHEMAS / "jupyterhub-chart" / version / "values.yaml"
    if not defaults.is_file():
        pytest.skip(f"{defaults} is absent (MANIFEST.md in {SHARED_SCHEMAS} lists what is collected)")
    hub_image = yaml.safe_load(defaults.read_text())["hub"]["image"]
    assert pin.image == hub_image["name"] and hub_image["tag"] == "set-by-chartpress"


def test_tensorboard_without_jupyterhub_is_refused(renders) -> None:
    """Without the hub there is no login to put TensorBoard behind: a clear error naming the key."""
    with pytest.raises(InvalidConfig) as caught:
        renders.config("bare-metal", CHANNELS[-1], ("spec.components.jupyterhub.enabled=false",))
    lines = [line for line in caught.value.lines() if "spec.components.tensorboard.enabled" in line]
    assert lines and "JupyterHub" in lines[0] and "Fix:" in lines[0]
    assert caught.value.exit_code == 2


def test_init_adds_the_service_token_to_an_existing_secrets_file(tmp_path: Path) -> None:
    """A site made before this key exists gets it appended; every byte already there stays."""
    path = tmp_path / "secrets.yml"
    generate_secrets(path)
    data = yaml.safe_load(path.read_text())
    token = data.pop("jupyterhub_tensorboard_api_token")
    assert len(token) == 64 and int(token, 16) >= 0
    before = "".join(f"{key}: '{value}'\n" for key, value in data.items())
    path.write_text(before)
    path.chmod(0o600)
    assert generate_secrets(path) == ["jupyterhub_tensorboard_api_token"]
    after = path.read_text()
    assert after.startswith(before) and len(yaml.safe_load(after)["jupyterhub_tensorboard_api_token"]) == 64


# ---------------------------------------------------------------- the login proxy, run in-process


SERVICE_TOKEN = "service-token-for-tests"
GOOD_CODE = "code-for-alice"
# user tokens the stub hub knows, with the scopes JupyterHub would report for them
TOKENS = {"alice-token": [ACCESS_SCOPE, "read:users:name!user=alice"], "bob-token": ["read:users:name!user=bob"]}


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kfinstall_tensorboard_auth", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stub_hub() -> str:
    """The hub's API on its own thread and loop: HubOAuth identifies users with a blocking call."""
    if not HAVE_JUPYTERHUB:
        pytest.skip(NO_JUPYTERHUB)

    class TokenHandler(web.RequestHandler):
        """POST /hub/api/oauth2/token: JupyterHub's code exchange, checking the client's id and secret."""

        def post(self) -> None:
            args = {k: self.get_body_argument(k, "") for k in ("client_id", "client_secret", "code", "redirect_uri")}
            if (args["client_id"], args["client_secret"], args["redirect_uri"]) != (
                    "service-tensorboard", SERVICE_TOKEN, f"{PREFIX}oauth_callback") or args["code"] != GOOD_CODE:
                raise web.HTTPError(400)
            self.write({"access_token": "alice-token", "token_type": "Bearer"})

    class UserHandler(web.RequestHandler):
        """GET /hub/api/user: the model of the token's owner, with the scopes the token carries."""

        def get(self) -> None:
            token = self.request.headers.get("Authorization", "").removeprefix("token ")
            if token not in TOKENS:
                raise web.HTTPError(403)
            self.write({"kind": "user", "name": token.split("-")[0], "groups": [], "scopes": TOKENS[token]})

    sock, port = bind_unused_port()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        server = HTTPServer(web.Application([("/hub/api/oauth2/token", TokenHandler),
                                             ("/hub/api/user", UserHandler)]))
        server.add_sockets([sock])
        started.set()
        IOLoop.current().start()

    threading.Thread(target=serve, daemon=True).start()
    started.wait(10)
    return f"http://127.0.0.1:{port}/hub/api"


def _env(api_url: str) -> dict[str, str]:
    return {"JUPYTERHUB_API_TOKEN": SERVICE_TOKEN, "JUPYTERHUB_API_URL": api_url,
            "JUPYTERHUB_CLIENT_ID": "service-tensorboard", "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{PREFIX}oauth_callback",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps([ACCESS_SCOPE])}


@dataclass
class _Pod:
    """The login proxy and a stand-in TensorBoard that records what reaches it."""

    base: str
    reached: list[dict[str, Any]] = field(default_factory=list)

    async def fetch(self, path: str, **kwargs: Any) -> Any:
        return await httpclient.AsyncHTTPClient().fetch(self.base + path, follow_redirects=False,
                                                        raise_error=False, **kwargs)


@asynccontextmanager
async def _pod(api_url: str) -> AsyncIterator[_Pod]:
    script = _load_script()
    reached: list[dict[str, Any]] = []

    class Board(web.RequestHandler):
        def get(self) -> None:
            reached.append({"method": self.request.method, "uri": self.request.uri,
                            "headers": dict(self.request.headers), "body": self.request.body})
            self.set_header("X-Board", "yes")
            self.write(f"board {self.request.method} {self.request.uri}")

        post = get

    board_sock, board_port = bind_unused_port()
    board = HTTPServer(web.Application([(".*", Board)]))
    board.add_sockets([board_sock])
    app = script.make_app(script.hub_auth(_env(api_url)), f"http://127.0.0.1:{board_port}")
    proxy_sock, proxy_port = bind_unused_port()
    proxy = HTTPServer(app, xheaders=True)
    proxy.add_sockets([proxy_sock])
    try:
        yield _Pod(f"http://127.0.0.1:{proxy_port}", reached)
    finally:
        proxy.stop()
        board.stop()


def _cookies(response: Any) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return jar


async def _log_in(pod: _Pod) -> str:
    """The browser's OAuth round trip; returns the Cookie header the browser then sends."""
    start = await pod.fetch(f"{PREFIX}data/runs")
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    state_cookies = "; ".join(f"{k}={m.value}" for k, m in _cookies(start).items())
    done = await pod.fetch(f"{PREFIX}oauth_callback?" + urlencode({"code": GOOD_CODE, "state": state}),
                           headers={"Cookie": state_cookies})
    assert done.code == 302 and done.headers["Location"] == f"{PREFIX}data/runs"
    login = _cookies(done)["service-tensorboard"].value
    return f"service-tensorboard={login}"


def test_without_a_login_a_browser_is_sent_to_the_hub_and_nothing_reaches_tensorboard(stub_hub: str) -> None:
    async def scenario() -> None:
        async with _pod(stub_hub) as pod:
            page = await pod.fetch(f"{PREFIX}#scalars")
            data = await pod.fetch(f"{PREFIX}data/plugin/scalars/tags")
            post = await pod.fetch(f"{PREFIX}data/plugin/scalars/scalars_multirun", method="POST", body="tag=loss")
            for response in (page, data):
                assert response.code == 302
                target = urlsplit(response.headers["Location"])
                assert target.path == "/hub/api/oauth2/authorize"
                query = parse_qs(target.query)
                assert query["client_id"] == ["service-tensorboard"]
                assert query["redirect_uri"] == [f"{PREFIX}oauth_callback"]
                assert query["response_type"] == ["code"] and query["state"][0]
            assert post.code == 403
            assert pod.reached == []

    asyncio.run(scenario())


def test_after_the_hub_login_requests_are_proxied_without_credentials(stub_hub: str) -> None:
    async def scenario() -> None:
        async with _pod(stub_hub) as pod:
            cookie = await _log_in(pod)
            assert pod.reached == []
            page = await pod.fetch(f"{PREFIX}data/runs?x=1", headers={"Cookie": cookie})
            assert page.code == 200 and page.body == f"board GET {PREFIX}data/runs?x=1".encode()
            assert page.headers["X-Board"] == "yes"
            # TensorBoard's frontend: same-origin fetch() calls without JupyterHub's _xsrf token.
            fetched = await pod.fetch(f"{PREFIX}data/plugin/scalars/scalars_multirun", method="POST", body="tag=loss",
                                      headers={"Cookie": cookie, "Sec-Fetch-Mode": "cors",
                                               "Sec-Fetch-Site": "same-origin"})
            assert fetched.code == 200 and pod.reached[-1]["body"] == b"tag=loss"
            for seen in pod.reached:
                assert not {"Cookie", "Authorization"} & set(seen["headers"]), "a credential reached TensorBoard"
            # Another site cannot use the login: a cross-site request needs the hub's xsrf token.
            count = len(pod.reached)
            forged = await pod.fetch(f"{PREFIX}data/plugin/scalars/scalars_multirun", method="POST", body="x",
                                     headers={"Cookie": cookie, "Sec-Fetch-Mode": "cors",
                                              "Sec-Fetch-Site": "cross-site"})
            assert forged.code == 403 and len(pod.reached) == count

    asyncio.run(scenario())


def test_hub_tokens_need_the_services_access_scope(stub_hub: str) -> None:
    async def scenario() -> None:
        async with _pod(stub_hub) as pod:
            denied = await pod.fetch(f"{PREFIX}data/runs", headers={"Authorization": "token bob-token"})
            unknown = await pod.fetch(f"{PREFIX}data/runs", headers={"Authorization": "token nobody"})
            assert denied.code == 403 and unknown.code == 302 and pod.reached == []
            allowed = await pod.fetch(f"{PREFIX}data/runs", headers={"Authorization": "token alice-token"})
            assert allowed.code == 200 and "Authorization" not in pod.reached[-1]["headers"]

    asyncio.run(scenario())


def test_readiness_follows_tensorboard_and_is_outside_the_hub_route(stub_hub: str) -> None:
    async def scenario() -> None:
        async with _pod(stub_hub) as pod:
            assert (await pod.fetch("/readyz")).code == 200
            assert pod.reached[-1]["uri"] == PREFIX
        script = _load_script()
        app = script.make_app(script.hub_auth(_env(stub_hub)), "http://127.0.0.1:9")  # nothing listens there
        sock, port = bind_unused_port()
        server = HTTPServer(app)
        server.add_sockets([sock])
        try:
            gone = await httpclient.AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/readyz", raise_error=False)
            assert gone.code == 503
        finally:
            server.stop()

    asyncio.run(scenario())


@needs_jupyterhub
def test_missing_settings_exit_2_naming_the_variable_never_a_value(capsys) -> None:
    script = _load_script()
    env = _env("http://hub.invalid/hub/api")
    del env["JUPYTERHUB_CLIENT_ID"]
    assert script.main(["--port", "0", "--upstream", "http://127.0.0.1:6006"], env=env) == 2
    err = capsys.readouterr().err
    assert "JUPYTERHUB_CLIENT_ID" in err and SERVICE_TOKEN not in err
    env = {**_env("http://hub.invalid/hub/api"), "JUPYTERHUB_OAUTH_ACCESS_SCOPES": "access:services"}
    assert script.main(["--port", "0", "--upstream", "http://127.0.0.1:6006"], env=env) == 2
    assert "JUPYTERHUB_OAUTH_ACCESS_SCOPES" in capsys.readouterr().err
