"""Map the top-level folders into one ``accel`` namespace (see ARCHITECTURE.md, "Packaging")."""
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
FOLDERS = {"accel": "accel", "accel.rtl": "rtl", "accel.emulator": "emulator",
           "accel.mapping": "mapping", "accel.fpga": "fpga"}


def _packages():
    package_dir, packages = {}, []
    for name, folder in FOLDERS.items():
        package_dir[name] = folder
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            packages.append(".".join([name, *rel.parts]) if rel.parts else name)
    return package_dir, packages


package_dir, packages = _packages()
setup(package_dir=package_dir, packages=packages,
      package_data={"accel.presets": ["*.yaml"]})
