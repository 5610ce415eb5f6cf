namespace SharpBlock.Drivers.Creation;

/// <summary>How a new image is laid out and filled (qemu-img create -o for qcow2 and raw).</summary>
public enum Preallocation
{
    Off,
    Metadata,
    Falloc,
    Full,
}
