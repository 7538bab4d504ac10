// Kernel family placeholder (filled in by the optim family).
export const optimFamilyVersion: i32 = 0;
