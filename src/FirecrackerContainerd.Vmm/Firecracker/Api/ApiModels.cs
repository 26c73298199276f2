using System.Text.Json;
using System.Text.Json.Serialization;

// The bodies of Firecracker's HTTP API, one record per definition of its OpenAPI description
// (firecracker-api.yaml, `definitions:`), with the description's own property names. Only the
// properties the driver sends or reads are declared; optional ones are omitted from JSON when null.
namespace FirecrackerContainerd.Vmm.Firecracker.Api;

/// <summary>Definition <c>InstanceActionInfo</c>: the body of <c>PUT /actions</c>.</summary>
internal sealed record InstanceActionInfo([property: JsonPropertyName("action_type")] ActionType ActionType);

/// <summary>Enumeration of <c>InstanceActionInfo.action_type</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ActionType>))]
internal enum ActionType
{
    FlushMetrics,
    InstanceStart,
    SendCtrlAltDel,
}

/// <summary>Definition <c>BootSource</c>: the body of <c>PUT /boot-source</c>.</summary>
internal sealed record ApiBootSource(
    [property: JsonPropertyName("kernel_image_path")] string KernelImagePath,
    [property: JsonPropertyName("boot_args")] string? BootArgs,
    [property: JsonPropertyName("initrd_path")] string? InitrdPath);

/// <summary>Definition <c>MachineConfiguration</c>: the body of <c>PUT /machine-config</c> and the answer of its GET.</summary>
internal sealed record ApiMachineConfiguration(
    [property: JsonPropertyName("vcpu_count")] int VcpuCount,
    [property: JsonPropertyName("mem_size_mib")] int MemSizeMib,
    [property: JsonPropertyName("smt")] bool? Smt = null,
    [property: JsonPropertyName("track_dirty_pages")] bool? TrackDirtyPages = null);

/// <summary>Definition <c>TokenBucket</c>.</summary>
internal sealed record ApiTokenBucket(
    [property: JsonPropertyName("size")] long Size,
    [property: JsonPropertyName("refill_time")] long RefillTime,
    [property: JsonPropertyName("one_time_burst")] long? OneTimeBurst);

/// <summary>Definition <c>RateLimiter</c>.</summary>
internal sealed record ApiRateLimiter(
    [property: JsonPropertyName("bandwidth")] ApiTokenBucket? Bandwidth,
    [property: JsonPropertyName("ops")] ApiTokenBucket? Ops);

/// <summary>Enumeration of <c>Drive.cache_type</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ApiCacheType>))]
internal enum ApiCacheType
{
    Unsafe,
    Writeback,
}

/// <summary>Definition <c>Drive</c>: the body of <c>PUT /drives/{drive_id}</c>.</summary>
internal sealed record ApiDrive(
    [property: JsonPropertyName("drive_id")] string DriveId,
    [property: JsonPropertyName("is_root_device")] bool IsRootDevice,
    [property: JsonPropertyName("path_on_host")] string PathOnHost,
    [property: JsonPropertyName("is_read_only")] bool IsReadOnly,
    [property: JsonPropertyName("partuuid")] string? Partuuid,
    [property: JsonPropertyName("cache_type")] ApiCacheType? CacheType,
    [property: JsonPropertyName("rate_limiter")] ApiRateLimiter? RateLimiter);

/// <summary>Definition <c>PartialDrive</c>: the body of <c>PATCH /drives/{drive_id}</c>.</summary>
internal sealed record ApiPartialDrive(
    [property: JsonPropertyName("drive_id")] string DriveId,
    [property: JsonPropertyName("path_on_host")] string? PathOnHost,
    [property: JsonPropertyName("rate_limiter")] ApiRateLimiter? RateLimiter = null);

/// <summary>Definition <c>NetworkInterface</c>: the body of <c>PUT /network-interfaces/{iface_id}</c>.</summary>
internal sealed record ApiNetworkInterface(
    [property: JsonPropertyName("iface_id")] string IfaceId,
    [property: JsonPropertyName("host_dev_name")] string HostDevName,
    [property: JsonPropertyName("guest_mac")] string? GuestMac,
    [property: JsonPropertyName("rx_rate_limiter")] ApiRateLimiter? RxRateLimiter,
    [property: JsonPropertyName("tx_rate_limiter")] ApiRateLimiter? TxRateLimiter);

/// <summary>Definition <c>Vsock</c>: the body of <c>PUT /vsock</c> (the deprecated <c>vsock_id</c> is not sent).</summary>
internal sealed record ApiVsock(
    [property: JsonPropertyName("guest_cid")] uint GuestCid,
    [property: JsonPropertyName("uds_path")] string UdsPath);

/// <summary>Enumeration of <c>Logger.level</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<FirecrackerLogLevel>))]
public enum FirecrackerLogLevel
{
    /// <summary>Errors only.</summary>
    Error,

    /// <summary>Warnings and errors.</summary>
    Warning,

    /// <summary>Firecracker's default.</summary>
    Info,

    /// <summary>Debugging detail.</summary>
    Debug,

    /// <summary>Everything.</summary>
    Trace,

    /// <summary>Nothing.</summary>
    Off,
}

/// <summary>Definition <c>Logger</c>: the body of <c>PUT /logger</c>.</summary>
internal sealed record ApiLogger(
    [property: JsonPropertyName("log_path")] string LogPath,
    [property: JsonPropertyName("level")] FirecrackerLogLevel Level,
    [property: JsonPropertyName("show_level")] bool ShowLevel,
    [property: JsonPropertyName("show_log_origin")] bool ShowLogOrigin);

/// <summary>Definition <c>Metrics</c>: the body of <c>PUT /metrics</c>.</summary>
internal sealed record ApiMetrics([property: JsonPropertyName("metrics_path")] string MetricsPath);

/// <summary>Definition <c>MmdsConfig</c>: the body of <c>PUT /mmds/config</c>.</summary>
internal sealed record ApiMmdsConfig(
    [property: JsonPropertyName("network_interfaces")] IReadOnlyList<string> NetworkInterfaces,
    [property: JsonPropertyName("version")] string? Version,
    [property: JsonPropertyName("ipv4_address")] string? Ipv4Address);

/// <summary>Definition <c>Balloon</c>: the body of <c>PUT /balloon</c>.</summary>
internal sealed record ApiBalloon(
    [property: JsonPropertyName("amount_mib")] int AmountMib,
    [property: JsonPropertyName("deflate_on_oom")] bool DeflateOnOom,
    [property: JsonPropertyName("stats_polling_interval_s")] int? StatsPollingIntervalS,
    [property: JsonPropertyName("free_page_reporting")] bool? FreePageReporting = null);

/// <summary>Definition <c>BalloonUpdate</c>: the body of <c>PATCH /balloon</c>.</summary>
internal sealed record ApiBalloonUpdate([property: JsonPropertyName("amount_mib")] int AmountMib);

/// <summary>Definition <c>BalloonStatsUpdate</c>: the body of <c>PATCH /balloon/statistics</c>.</summary>
internal sealed record ApiBalloonStatsUpdate([property: JsonPropertyName("stats_polling_interval_s")] int StatsPollingIntervalS);

/// <summary>Definition <c>BalloonStats</c>: the answer of <c>GET /balloon/statistics</c>; the guest's figures are absent until it reports them.</summary>
internal sealed record ApiBalloonStats(
    [property: JsonPropertyName("target_pages")] long TargetPages,
    [property: JsonPropertyName("actual_pages")] long ActualPages,
    [property: JsonPropertyName("target_mib")] long TargetMib,
    [property: JsonPropertyName("actual_mib")] long ActualMib,
    [property: JsonPropertyName("swap_in")] long? SwapIn,
    [property: JsonPropertyName("swap_out")] long? SwapOut,
    [property: JsonPropertyName("major_faults")] long? MajorFaults,
    [property: JsonPropertyName("minor_faults")] long? MinorFaults,
    [property: JsonPropertyName("free_memory")] long? FreeMemory,
    [property: JsonPropertyName("total_memory")] long? TotalMemory,
    [property: JsonPropertyName("available_memory")] long? AvailableMemory,
    [property: JsonPropertyName("disk_caches")] long? DiskCaches,
    [property: JsonPropertyName("hugetlb_allocations")] long? HugetlbAllocations,
    [property: JsonPropertyName("hugetlb_failures")] long? HugetlbFailures);

/// <summary>Enumeration of <c>Vm.state</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ApiVmState>))]
internal enum ApiVmState
{
    Paused,
    Resumed,
}

/// <summary>Definition <c>Vm</c>: the body of <c>PATCH /vm</c>.</summary>
internal sealed record ApiVm([property: JsonPropertyName("state")] ApiVmState State);

/// <summary>Definition <c>SnapshotCreateParams</c>: the body of <c>PUT /snapshot/create</c>.</summary>
internal sealed record ApiSnapshotCreateParams(
    [property: JsonPropertyName("snapshot_path")] string SnapshotPath,
    [property: JsonPropertyName("mem_file_path")] string MemFilePath,
    [property: JsonPropertyName("snapshot_type")] string SnapshotType);

/// <summary>Definition <c>MemoryBackend</c>.</summary>
internal sealed record ApiMemoryBackend(
    [property: JsonPropertyName("backend_type")] string BackendType,
    [property: JsonPropertyName("backend_path")] string BackendPath);

/// <summary>Definition <c>VsockOverride</c>.</summary>
internal sealed record ApiVsockOverride([property: JsonPropertyName("uds_path")] string UdsPath);

/// <summary>Definition <c>SnapshotLoadParams</c>: the body of <c>PUT /snapshot/load</c>.</summary>
internal sealed record ApiSnapshotLoadParams(
    [property: JsonPropertyName("snapshot_path")] string SnapshotPath,
    [property: JsonPropertyName("mem_backend")] ApiMemoryBackend MemBackend,
    [property: JsonPropertyName("track_dirty_pages")] bool TrackDirtyPages,
    [property: JsonPropertyName("resume_vm")] bool ResumeVm,
    [property: JsonPropertyName("vsock_override")] ApiVsockOverride? VsockOverride);

/// <summary>Definition <c>InstanceInfo</c>: the answer of <c>GET /</c>.</summary>
internal sealed record ApiInstanceInfo(
    [property: JsonPropertyName("id")] string? Id,
    [property: JsonPropertyName("state")] string? State,
    [property: JsonPropertyName("vmm_version")] string? VmmVersion,
    [property: JsonPropertyName("app_name")] string? AppName);

/// <summary>Definition <c>Error</c>: the body of every 4xx/5xx answer.</summary>
internal sealed record ApiError([property: JsonPropertyName("fault_message")] string? FaultMessage);

/// <summary>Source-generated serializers for the API bodies (no reflection, trimming and AOT safe).</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(InstanceActionInfo))]
[JsonSerializable(typeof(ApiBootSource))]
[JsonSerializable(typeof(ApiMachineConfiguration))]
[JsonSerializable(typeof(ApiDrive))]
[JsonSerializable(typeof(ApiPartialDrive))]
[JsonSerializable(typeof(ApiNetworkInterface))]
[JsonSerializable(typeof(ApiVsock))]
[JsonSerializable(typeof(ApiLogger))]
[JsonSerializable(typeof(ApiMetrics))]
[JsonSerializable(typeof(ApiMmdsConfig))]
[JsonSerializable(typeof(ApiBalloon))]
[JsonSerializable(typeof(ApiBalloonUpdate))]
[JsonSerializable(typeof(ApiBalloonStatsUpdate))]
[JsonSerializable(typeof(ApiBalloonStats))]
[JsonSerializable(typeof(ApiVm))]
[JsonSerializable(typeof(ApiSnapshotCreateParams))]
[JsonSerializable(typeof(ApiSnapshotLoadParams))]
[JsonSerializable(typeof(ApiInstanceInfo))]
[JsonSerializable(typeof(ApiError))]
[JsonSerializable(typeof(JsonElement))]
internal sealed partial class FirecrackerJsonContext : JsonSerializerContext;
