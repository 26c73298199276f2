using FirecrackerContainerd.Vmm.Tests.Contract;

namespace FirecrackerContainerd.Vmm.Tests;

public class SwaggerContractTests
{
    private static readonly SwaggerContract Contract = SwaggerContract.LoadDefault();

    [Fact]
    public void Description_loads_with_the_endpoints_the_driver_uses()
    {
        foreach (var path in new[] { "/", "/actions", "/boot-source", "/drives/{drive_id}", "/logger", "/machine-config", "/metrics",
                     "/mmds", "/mmds/config", "/network-interfaces/{iface_id}", "/snapshot/create", "/snapshot/load", "/vm", "/vsock", "/balloon" })
        {
            Assert.Contains(path, Contract.PathTemplates);
        }

        Assert.Contains("204", Contract.ResponseCodes("PUT", "/drives/{drive_id}"));
        Assert.Contains("400", Contract.ResponseCodes("PATCH", "/vm"));
    }

    [Theory]
    [InlineData("PUT", "/drives/root", """{"drive_id":"root","is_root_device":true,"path_on_host":"/r","is_read_only":false}""")]
    [InlineData("PATCH", "/drives/stub0", """{"drive_id":"stub0","path_on_host":"/x"}""")]
    [InlineData("PUT", "/actions", """{"action_type":"InstanceStart"}""")]
    [InlineData("PUT", "/vsock", """{"guest_cid":3,"uds_path":"firecracker.vsock"}""")]
    [InlineData("PUT", "/mmds", """{"anything":{"goes":[1,2]}}""")]
    [InlineData("PUT", "/metrics", """{"metrics_path":"fc-metrics.fifo","properties":{"k":"v"}}""")]
    [InlineData("GET", "/", null)]
    public void Conforming_requests_have_no_violations(string method, string path, string? body)
    {
        Assert.Empty(Contract.Validate(method, path, body));
    }

    [Theory]
    [InlineData("PUT", "/drives/root", """{"drive_id":"root","path_on_host":"/r"}""", "required property \"is_root_device\" is missing")]
    [InlineData("PUT", "/machine-config", """{"vcpu_count":"2","mem_size_mib":128}""", "expected integer")]
    [InlineData("PUT", "/machine-config", """{"vcpu_count":0,"mem_size_mib":128}""", "below the minimum")]
    [InlineData("PUT", "/machine-config", """{"vcpu_count":33,"mem_size_mib":128}""", "above the maximum")]
    [InlineData("PUT", "/vsock", """{"guest_cid":2,"uds_path":"v"}""", "below the minimum")]
    [InlineData("PUT", "/vsock", """{"guest_cid":3,"uds_path":"v","colour":"red"}""", "unknown property \"colour\"")]
    [InlineData("PUT", "/actions", """{"action_type":"Reboot"}""", "is not one of")]
    [InlineData("PATCH", "/vm", """{"state":"Stopped"}""", "is not one of")]
    [InlineData("PUT", "/drives/root", """{"drive_id":"root","is_root_device":true,"rate_limiter":{"bandwidth":{"size":-1,"refill_time":1}}}""", "below the minimum")]
    [InlineData("PUT", "/metrics", """{"metrics_path":"m","properties":{"k":1}}""", "expected string")]
    [InlineData("PUT", "/boot-source", "not json", "body is not JSON")]
    [InlineData("PUT", "/boot-source", null, "a body is required")]
    [InlineData("POST", "/actions", """{"action_type":"InstanceStart"}""", "has no POST")]
    [InlineData("PUT", "/reboot", "{}", "no such path")]
    [InlineData("PUT", "/drives/bad-id", """{"drive_id":"bad-id","is_root_device":false}""", "no such path")]
    public void Violations_are_reported_with_the_reason(string method, string path, string? body, string expected)
    {
        var violations = Contract.Validate(method, path, body);
        Assert.Contains(violations, v => v.Contains(expected, StringComparison.Ordinal));
    }
}
