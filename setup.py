"""The package list, kept here because pyproject.toml cannot both find packages and add mapped folders.

``recipes/`` and ``accelerate_configs/`` live at the top of a checkout, where users look for them, and ship inside
the wheel as ``lprecover/recipes`` and ``lprecover/accelerate_configs``, so an installed lprecover finds them too
(``lprecover.config.RECIPES_DIR``, ``lprecover recipes``).
"""

from setuptools import find_packages, setup

SHIPPED_FOLDERS = {"lprecover.recipes": "recipes", "lprecover.accelerate_configs": "accelerate_configs"}

setup(
    packages=[*find_packages(include=["lprecover", "lprecover.*", "data_prep", "data_prep.*"]), *SHIPPED_FOLDERS],
    package_dir=SHIPPED_FOLDERS,
)
