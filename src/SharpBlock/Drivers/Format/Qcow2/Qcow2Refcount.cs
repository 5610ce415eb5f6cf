using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Refcount block entries are refcount_bits = 1 &lt;&lt; refcount_order wide. Entries of 8 bits and more are
/// big-endian; narrower ones are packed into bytes starting at the least significant bit.
/// </summary>
public static class Qcow2Refcount
{
    public static ulong MaxValue(int order) => order == 6 ? ulong.MaxValue : (1UL << (1 << order)) - 1;

    public static ulong Get(ReadOnlySpan<byte> block, int order, int index)
    {
        switch (order)
        {
            case 0:
            case 1:
            case 2:
                {
                    int bits = 1 << order;
                    int perByte = 8 / bits;
                    return (ulong)((block[index / perByte] >> (index % perByte * bits)) & ((1 << bits) - 1));
                }

            case 3:
                return block[index];
            case 4:
                return BinaryPrimitives.ReadUInt16BigEndian(block[(index * 2)..]);
            case 5:
                return BinaryPrimitives.ReadUInt32BigEndian(block[(index * 4)..]);
            default:
                return BinaryPrimitives.ReadUInt64BigEndian(block[(index * 8)..]);
        }
    }

    public static void Set(Span<byte> block, int order, int index, ulong value)
    {
        switch (order)
        {
            case 0:
            case 1:
            case 2:
                {
                    int bits = 1 << order;
                    int perByte = 8 / bits;
                    int shift = index % perByte * bits;
                    int mask = ((1 << bits) - 1) << shift;
                    ref byte b = ref block[index / perByte];
                    b = (byte)((b & ~mask) | (((int)value << shift) & mask));
                    break;
                }

            case 3:
                block[index] = (byte)value;
                break;
            case 4:
                BinaryPrimitives.WriteUInt16BigEndian(block[(index * 2)..], (ushort)value);
                break;
            case 5:
                BinaryPrimitives.WriteUInt32BigEndian(block[(index * 4)..], (uint)value);
                break;
            default:
                BinaryPrimitives.WriteUInt64BigEndian(block[(index * 8)..], value);
                break;
        }
    }
}
