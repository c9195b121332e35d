# A BUILD file prelude (see `build_file_prelude_globs` in pants.toml): Pants runs it before every
# BUILD file, and its functions become BUILD file symbols. It may not import anything.


def triton_model(**kwargs):
    """A model folder, `models/<name>/`: its archive and the python targets around it.

    `triton_model()` is a model's whole BUILD file. It declares:
    - `:<name>`, a `triton_model_archive` (every keyword argument goes to it: see
      `./pants help triton_model_archive`), which `package-triton`, `test-triton` and `publish`
      act on;
    - `:steps`, the steps' code (`<step>/<version>/*.py`), formatted but not type-checked: mypy
      cannot take several `model.py` files in one run, since a version folder such as `1` is
      not a valid package name;
    - `:tests`, `tests/test_*.py`, with the model's files as a dependency so that a test can run
      the pipeline on its cases;
    - `:scripts`, the folder's own scripts (`train.py`, `make_cases.py`, ...), run on the
      workspace (`./pants run models/<name>/train.py`) because they write the weights and
      cases into the folder, with DVC available for `dvc add`.
    """
    name = kwargs.get("name") or build_file_dir().name
    kwargs["name"] = name
    triton_model_archive(**kwargs)
    python_sources(name="steps", sources=["*/[0-9]*/**/*.py"], skip_mypy=True)
    python_tests(name="tests", sources=["tests/test_*.py"], dependencies=[f":{name}"])
    python_sources(
        name="scripts",
        sources=["*.py"],
        dependencies=["3rdparty/python:python-default#dvc"],
        run_goal_use_sandbox=False,
    )
