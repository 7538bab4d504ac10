// Kernel family placeholder (filled in by the nn family).
export const nnFamilyVersion: i32 = 0;
