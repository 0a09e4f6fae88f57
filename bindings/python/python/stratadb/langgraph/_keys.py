"""Key encoding shared by the checkpointer and the store.

Keys are ``str`` and may hold any character but NUL. Components that come from users
(thread ids, namespaces, task ids) are escaped so that ``/`` can separate them: ``%`` is
written ``%25``, ``/`` is ``%2F`` and NUL is ``%00``. The escaping keeps the order of
components that do not contain those characters.
"""

from __future__ import annotations


def enc(s: str) -> str:
    """Escapes a key component."""
    if "%" in s or "/" in s or "\x00" in s:
        return s.replace("%", "%25").replace("/", "%2F").replace("\x00", "%00")
    return s


def dec(s: str) -> str:
    """Reverses :func:`enc`."""
    if "%" in s:
        return s.replace("%2F", "/").replace("%00", "\x00").replace("%25", "%")
    return s
