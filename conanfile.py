# Conan 2 recipe for loco, a header-only library.
#   conan create . -pr:a conan/profiles/debian12        (offline, Debian's packages)
#   conan create . -o "&:with_mpi=True"                 (ConanCenter dependencies)
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load

required_conan_version = ">=2.0"


class LocoConan(ConanFile):
    name = "loco"
    description = "Header-only C++20 library for low-communication distributed optimization"
    license = "MIT"
    topics = ("distributed-optimization", "compression", "sgd", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {
        "with_tcp": [True, False],
        "with_mpi": [True, False],
        "with_blas": [True, False],
        "with_zlib": [True, False],
    }
    default_options = {
        "with_tcp": True,
        "with_mpi": False,
        "with_blas": True,
        "with_zlib": True,
    }
    exports_sources = "CMakeLists.txt", "cmake/*", "include/*", "tools/loco-launch", "LICENSE*"
    no_copy_source = True

    def set_version(self):
        text = load(self, os.path.join(self.recipe_folder, "include", "loco", "version.hpp"))
        parts = [re.search(rf"#define LOCO_VERSION_{p} (\d+)", text).group(1)
                 for p in ("MAJOR", "MINOR", "PATCH")]
        self.version = ".".join(parts)

    def layout(self):
        cmake_layout(self)

    def requirements(self):
        # Headers of loco include these, so they are transitive for consumers.
        self.requires("xtensor/[>=0.24.3 <0.25]", transitive_headers=True)
        self.requires("xsimd/[>=8.0.5 <9]", transitive_headers=True)
        self.requires("xtl/[>=0.7.2 <0.8]", transitive_headers=True)
        if self.options.with_tcp:
            self.requires("boost/[>=1.74.0 <2]", transitive_headers=True)
            self.requires("openssl/[>=3.0 <4]", transitive_headers=True)
        if self.options.with_mpi:
            self.requires("openmpi/[>=4.1 <6]", transitive_headers=True)
        if self.options.with_blas:
            self.requires("xtensor-blas/[>=0.20.0 <0.21]", transitive_headers=True)
            self.requires("openblas/[>=0.3.20 <0.4]")
        if self.options.with_zlib:
            self.requires("zlib/[>=1.2.11 <2]", transitive_headers=True)

    def validate(self):
        check_min_cppstd(self, 20)

    def package_id(self):
        self.info.clear()

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["LOCO_BUILD_TESTS"] = False
        tc.cache_variables["LOCO_BUILD_BENCHMARKS"] = False
        tc.cache_variables["LOCO_BUILD_EXAMPLES"] = False
        tc.generate()

    def build(self):
        pass  # nothing to compile

    def package(self):
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"),
             os.path.join(self.package_folder, "include"))
        copy(self, "loco-launch", os.path.join(self.source_folder, "tools"),
             os.path.join(self.package_folder, "bin"))
        copy(self, "LICENSE*", self.source_folder, os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "loco")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []

        core = self.cpp_info.components["core"]
        core.set_property("cmake_target_name", "loco::loco")
        core.bindirs = []
        core.libdirs = []
        core.defines = ["XTENSOR_USE_XSIMD"]
        core.requires = ["xtensor::xtensor", "xsimd::xsimd", "xtl::xtl"]
        if self.settings.os in ("Linux", "FreeBSD"):
            core.system_libs = ["pthread"]

        if self.options.with_tcp:
            tcp = self.cpp_info.components["tcp"]
            tcp.set_property("cmake_target_name", "loco::tcp")
            tcp.bindirs, tcp.libdirs = [], []
            tcp.requires = ["core", "boost::headers", "openssl::ssl", "openssl::crypto"]
        if self.options.with_mpi:
            mpi = self.cpp_info.components["mpi"]
            mpi.set_property("cmake_target_name", "loco::mpi")
            mpi.bindirs, mpi.libdirs = [], []
            mpi.requires = ["core", "openmpi::openmpi"]
        if self.options.with_blas:
            blas = self.cpp_info.components["blas"]
            blas.set_property("cmake_target_name", "loco::blas")
            blas.bindirs, blas.libdirs = [], []
            blas.requires = ["core", "xtensor-blas::xtensor-blas", "openblas::openblas"]
        if self.options.with_zlib:
            z = self.cpp_info.components["zlib"]
            z.set_property("cmake_target_name", "loco::zlib")
            z.bindirs, z.libdirs = [], []
            z.requires = ["core", "zlib::zlib"]
