"""The mock engine answers what a real provider would compute and the program may read."""

from __future__ import annotations

import pulumi
import pulumi_random as random

from installer.render import PlatformMocks, RecordingMonitor


def test_random_password_gets_a_secret_result_of_the_asked_length() -> None:
    mocks = PlatformMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="kfinstall", stack="mocktest", preview=False, monitor=monitor)
    seen: dict[str, object] = {}

    @pulumi.runtime.test
    def run() -> pulumi.Output:
        password = random.RandomPassword("pw", length=24, special=False)

        async def check() -> None:
            seen["secret"] = await password.result.is_secret()
            seen["value"] = await password.result.future()

        return pulumi.Output.from_input(check())

    run()
    assert seen["secret"] is True
    assert isinstance(seen["value"], str) and len(seen["value"]) == 24


def test_services_get_a_cluster_ip_and_the_monitor_keeps_parents() -> None:
    import pulumi_kubernetes as k8s

    mocks = PlatformMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="kfinstall", stack="mocktest", preview=False, monitor=monitor)
    seen: dict[str, object] = {}

    class Holder(pulumi.ComponentResource):
        def __init__(self) -> None:
            super().__init__("kfinstall:platform:Serving", "serving")
            self.svc = k8s.core.v1.Service("serving-svc", metadata={"name": "x"}, spec={"ports": [{"port": 80}]},
                                           opts=pulumi.ResourceOptions(parent=self))
            self.register_outputs({})

    @pulumi.runtime.test
    def run() -> pulumi.Output:
        holder = Holder()
        return holder.svc.spec.cluster_ip.apply(lambda ip: seen.update(ip=ip))

    run()
    assert seen["ip"] == "10.96.0.10"
    urn = next(u for u, t, *_ in monitor.registrations if t == "kubernetes:core/v1:Service")
    assert "kfinstall:platform:Serving$kubernetes:core/v1:Service" in urn
