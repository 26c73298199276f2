namespace FirecrackerContainerd.TcRedirectTap;

internal static class Program
{
    public static int Main() => 0;
}
