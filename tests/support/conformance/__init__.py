"""The Python runner of the language-neutral conformance scenarios (tests/conformance/scenarios).

`spec` loads and validates the scenario files, `server` starts the one server they share, `session`
holds a running scenario's actors and saved values, `ops` maps each step to the SDK, `views` turns SDK
objects into the JSON shapes expectations are written against, and `expect` compares them.
"""
