using System.Buffers.Binary;
using System.Text;

namespace FirecrackerContainerd.Vsock.Tests.Vm;

/// <summary>Reads the notes of a 64-bit little-endian ELF file, enough to tell whether a kernel has a PVH entry.</summary>
internal static class ElfNotes
{
    private const uint PtNote = 4;

    // Xen's note for the 32-bit physical entry point that PVH boots start at (xen/include/public/elfnote.h).
    private const uint XenElfNotePhys32Entry = 18;

    /// <summary>Whether <paramref name="elf"/> has the note "Xen", type XEN_ELFNOTE_PHYS32_ENTRY, in a PT_NOTE segment.</summary>
    public static bool HasPvhEntry(ReadOnlySpan<byte> elf) => Notes(elf).Contains(("Xen", XenElfNotePhys32Entry));

    private static List<(string Owner, uint Type)> Notes(ReadOnlySpan<byte> elf)
    {
        Assert.True(elf.Length > 64 && elf[..4].SequenceEqual("\u007fELF"u8) && elf[4] == 2 && elf[5] == 1, "not a 64-bit little-endian ELF file");
        ulong programHeaders = BinaryPrimitives.ReadUInt64LittleEndian(elf[0x20..]);
        ushort entrySize = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x36..]);
        ushort count = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x38..]);
        var notes = new List<(string, uint)>();
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> header = elf[checked((int)programHeaders + (i * entrySize))..];
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != PtNote)
            {
                continue;
            }

            int offset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(header[8..]));
            int end = checked(offset + (int)BinaryPrimitives.ReadUInt64LittleEndian(header[0x20..]));
            while (offset + 12 <= end)
            {
                int nameSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(elf[offset..]);
                int descSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(elf[(offset + 4)..]);
                uint type = BinaryPrimitives.ReadUInt32LittleEndian(elf[(offset + 8)..]);
                string owner = Encoding.ASCII.GetString(elf.Slice(offset + 12, nameSize)).TrimEnd('\0');
                notes.Add((owner, type));
                offset += 12 + Align4(nameSize) + Align4(descSize);
            }
        }

        return notes;
    }

    private static int Align4(int size) => (size + 3) & ~3;
}
