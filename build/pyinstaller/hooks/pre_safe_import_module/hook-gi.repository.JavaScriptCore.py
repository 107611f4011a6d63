"""gi.repository modules exist only at run time: declare this one to PyInstaller's import graph."""


def pre_safe_import_module(api):  # type: ignore[no-untyped-def]
    api.add_runtime_module(api.module_name)
