"""Every OperationOutcome text the server can produce is a sentence a vendor's engineer reads, with no internal
names in it (issue 20). The texts are in the code: `messages()` lists them (the string given to FhirError.of,
bad_request, not_found, Issue and the consent rules' _refused), with `{…}` where a value is filled in.

Run `python tests/test_messages.py` to print them all for a review by eye (contradictions need a reader).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKERS = {"of", "bad_request", "not_found", "_refused", "Issue"}
INTERNAL = re.compile(r"mongo|pymongo|traceback|keyerror|typeerror|(?<![-\w])None(?![-\w])|\bdict\b|index_field|"
                      r"\bsp\.|\bso\.|self\.|__|\bge\{|\$in\b|\$or\b|StoredVersion|FhirContext|_ctx", re.I)


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{…}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        return left + right if left is not None and right is not None else None
    return None


def messages() -> list[tuple[str, int, str]]:
    """(file, line, text) of every message literal handed to an OperationOutcome maker in fhirserver/."""
    found = []
    for path in sorted((ROOT / "fhirserver").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in MAKERS:
                continue
            for arg in node.args:
                text = _literal(arg)
                if text and " " in text.strip() and len(text) > 15:  # a sentence, not a code such as "not-found"
                    found.append((str(path.relative_to(ROOT)), node.lineno, text))
    return found


def test_the_messages_are_found() -> None:
    assert len(messages()) > 150  # the helper still sees the server's messages


def test_every_message_is_a_sentence_without_internal_names() -> None:
    problems = []
    for where, line, text in messages():
        if not re.search(r"[.?!)]$", text.strip()):
            problems.append(f"{where}:{line}: does not end as a sentence: {text!r}")
        if INTERNAL.search(text):
            problems.append(f"{where}:{line}: names an internal: {text!r}")
    assert not problems, "\n".join(problems)


if __name__ == "__main__":
    for where, line, text in messages():
        print(f"{where}:{line}: {text}")
