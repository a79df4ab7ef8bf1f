"""Text helpers: tokenizing posts, placeholders, and the `- <label>: <description>` lines of label components."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping, Sequence

MIN_TOKEN_LENGTH = 3

STOPWORDS = frozenset(
    """
    about above after again against all and any are because been before being below between both but
    can could did does doing down during each few for from further had has have having her here hers
    herself him himself his how into its itself just more most myself nor not now off once only other
    our ours ourselves out over own same she should some such than that the their theirs them
    themselves then there these they this those through too under until very was were what when where
    which while who whom why will with would you your yours yourself yourselves also get got really
    don doesn didn isn wasn weren aren haven hasn won wouldn couldn shouldn let
    """.split()
)

_WORD = re.compile(r"[^\W_]+")
_PLACEHOLDER = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")
_LABEL_LINE = re.compile(r"^\s*-\s*(?P<label>[^:\n]+?)\s*:")
# Braces are excluded so that a suffix holding a placeholder is never mistaken for our own suffix and dropped.
_KEYWORD_SUFFIX = re.compile(r";\s*e\.g\.\s[^{}]*$")
KEYWORD_SUFFIX_PREFIX = "; e.g. "


def words(text: str) -> list[str]:
    """The runs of letters/digits in `text`, as written."""
    return _WORD.findall(text)


def tokenize(text: str) -> list[str]:
    """Lowercase words of letters/digits, at least MIN_TOKEN_LENGTH long, stopwords removed."""
    return [
        word
        for word in words(text.lower())
        if len(word) >= MIN_TOKEN_LENGTH and word not in STOPWORDS
    ]


# Posts are tokenized again for every label, example and wrong run they are compared with.
@functools.cache
def token_set(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


def one_line(text: str) -> str:
    return " ".join(text.split())


def placeholders(text: str) -> frozenset[str]:
    """Names of the `{{name}}` placeholders in a prompt component."""
    return frozenset(_PLACEHOLDER.findall(text))


def label_line_indexes(component: str, labels: Collection[str]) -> dict[str, list[int]]:
    """For each label, the indexes of the component's lines of the form `- <label>: ...`."""
    indexes: dict[str, list[int]] = {label: [] for label in labels}
    for index, line in enumerate(component.split("\n")):
        match = _LABEL_LINE.match(line)
        if match and match.group("label") in indexes:
            indexes[match.group("label")].append(index)
    return indexes


def label_lines(component: str, labels: Collection[str]) -> dict[str, str]:
    """The line describing each label (the contract guarantees exactly one per label)."""
    lines = component.split("\n")
    return {label: lines[found[0]] for label, found in label_line_indexes(component, labels).items() if found}


def without_keyword_suffix(line: str) -> str:
    return _KEYWORD_SUFFIX.sub("", line).rstrip()


def with_keywords(component: str, keywords_by_label: Mapping[str, Sequence[str]]) -> str:
    """Ends each label's line with `; e.g. <keywords>`, replacing an earlier suffix; other lines are kept."""
    lines = component.split("\n")
    for label, found in label_line_indexes(component, keywords_by_label.keys()).items():
        keywords = keywords_by_label[label]
        if keywords and found:
            line = lines[found[0]]
            lines[found[0]] = f"{without_keyword_suffix(line)}{KEYWORD_SUFFIX_PREFIX}{', '.join(keywords)}"
    return "\n".join(lines)


def description_of(line: str) -> str:
    """The text after `- <label>:` on a label line, without our keyword suffix."""
    return without_keyword_suffix(line.split(":", 1)[1]).strip()


def with_description(component: str, label: str, description: str) -> str:
    """Replaces the description on the line of `label`, keeping its `- <label>:` head and any keyword suffix."""
    lines = component.split("\n")
    index = label_line_indexes(component, [label])[label][0]
    line = lines[index]
    head, rest = line.split(":", 1)
    suffix = _KEYWORD_SUFFIX.search(rest)
    lines[index] = f"{head}: {description}{suffix.group(0) if suffix else ''}"
    return "\n".join(lines)


def unreferenced_components(components: Mapping[str, str]) -> list[str]:
    """Components no other component places with `{{name}}`: the roots a prompt is rendered from."""
    referenced = {name for component in components.values() for name in placeholders(component)}
    return [name for name in components if name not in referenced]


def render(components: Mapping[str, str]) -> str:
    """The system prompt as the agent sees it: the root with each placeholder replaced, one level deep.

    Falls back to listing every component under its name when there is no single root.
    """
    roots = unreferenced_components(components)
    if len(roots) != 1:
        return "\n\n".join(f"[{name}]\n{component}" for name, component in components.items())
    rendered = _PLACEHOLDER.sub(lambda match: components.get(match.group(1), ""), components[roots[0]])
    return re.sub(r"\n{3,}", "\n\n", rendered).strip()


RULE_PREFIX = "Learned rule: "


def learned_rules(component: str) -> list[str]:
    return [line.removeprefix(RULE_PREFIX) for line in component.split("\n") if line.startswith(RULE_PREFIX)]


def with_rule(component: str, rule: str, keep: int) -> str:
    """Appends `Learned rule: <rule>` as the last line, keeping only the newest `keep` such lines."""
    lines = component.rstrip("\n").split("\n")
    rule_indexes = [index for index, line in enumerate(lines) if line.startswith(RULE_PREFIX)]
    for index in reversed(rule_indexes[: max(0, len(rule_indexes) - keep + 1)]):
        del lines[index]
    if not rule_indexes and lines != [""]:
        lines.append("")
    lines.append(f"{RULE_PREFIX}{rule}")
    return "\n".join(lines)
