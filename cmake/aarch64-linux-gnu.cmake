# Cross-compiling toolchain: 64-bit ARM Linux (aarch64) from an x86-64 Debian machine, with the
# target's libraries from Debian's multiarch packages (`dpkg --add-architecture arm64`, then the
# `:arm64` -dev packages; scripts/setup-aarch64 installs them). Tests run under qemu-user
# (CMAKE_CROSSCOMPILING_EMULATOR), so ctest runs them as on an ARM machine, only slower.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Debian's multiarch layout: headers shared in /usr/include, libraries in /usr/lib/aarch64-linux-gnu.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
# The loader and libc at run time are the multiarch libc6:arm64 (/lib/ld-linux-aarch64.so.1),
# which the :arm64 libraries pull in. Not `-L /usr/aarch64-linux-gnu`: that loader is the cross
# toolchain's glibc build, and mixed with the multiarch libc.so it hangs in the first
# pthread_create (seen with qemu 7.2 and Debian 12's glibc 2.36-8cross1 / 2.36-9+deb12u14).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
