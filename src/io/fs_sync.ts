// Durability helper for atomic writes (temp file + rename), shared by the CLI's convert and the
// safetensors writer.
import { open, type FileHandle } from 'node:fs/promises';

/** Makes the rename durable (best effort: not every platform can fsync a directory). */
export async function syncDir(dir: string): Promise<void> {
  let h: FileHandle | undefined;
  try {
    h = await open(dir, 'r');
    await h.sync();
  } catch {
    /* ignore */
  } finally {
    await h?.close().catch(() => {});
  }
}
