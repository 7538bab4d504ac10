// Sizes of the wasm backend's float32 staging, shared by the backend and its kernel modules
// (a module of its own: the kernel modules import it without importing the backend).

/** Elements per block of a staged elementwise kernel (WasmBackend.runElementwise): 256 KiB of float32. */
export const ELEMENTWISE_BLOCK = 1 << 16;
