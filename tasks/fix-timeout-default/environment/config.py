"""Parse `key = value` settings, one per line; `#` starts a comment."""

DEFAULTS = {
    "retries": 3,  # attempts before giving up
    "timeout": 3,  # seconds to wait for an answer (documented default: 30)
    "verbose": False,
}


def load(text):
    """Return the settings in text on top of DEFAULTS (a new dict)."""
    settings = dict(DEFAULTS)
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        settings[key] = _convert(value)
    return settings


def _convert(value):
    if value in ("true", "false"):
        return value == "true"
    try:
        return int(value)
    except ValueError:
        return value
