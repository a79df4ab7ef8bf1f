"""Text helpers: tokenizing messages, placeholders, and the `- <label>: <description>` lines of label components."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping, Sequence

MIN_TOKEN_LENGTH = 3

# Function words, and words so common in any text that they never describe a label: pronouns,
# auxiliaries, conjunctions, prepositions, quantifiers, generic adverbs, and calendar and number words.
STOPWORDS = frozenset(
    """
    about above across after again against ago all almost along already also although always among
    and another any anybody anyone anything anyway are around because been before behind being below
    beside besides between beyond both but came can cannot come comes coming could did does doing done
    down during each either else enough etc even ever every everybody everyone everything few for from
    further get gets getting give given goes going gone got had has have having her here hers herself
    him himself his how however into its itself just keep kept know last least less let lets like lot
    lots made make makes making many may maybe might more most much must myself near need needs neither
    never next nor not now off often once one only onto other others otherwise our ours ourselves out
    over own per perhaps put quite rather really said same say says see seem seemed seems several she
    should since some somebody someone something sometimes somewhat soon still such take taken takes
    than that the their theirs them themselves then there therefore these they thing things think this
    those though through thus till today tomorrow together too took toward towards two three four five
    six seven eight nine ten first second third under unless until upon use used uses using very via
    want wanted was way ways well went were what whatever when whenever where whether which while who
    whoever whole whom whose why will with within without would yes yet yesterday you your yours
    yourself yourselves don doesn didn isn wasn weren aren haven hasn hadn won wouldn couldn shouldn
    ain day days week weeks month months year years hour hours minute minutes time times new
    instead back
    """.split()
)

_WORD = re.compile(r"[^\W_]+")
# Text that names or links rather than describes: @handles, #hashtags (the tag, not a word of the
# sentence) and URLs never become keywords.
_NOT_WORDS = re.compile(r"https?://\S+|www\.\S+|[@#][^\W_][\w-]*")
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


@functools.cache
def keyword_tokens(text: str) -> frozenset[str]:
    """The words of `text` that may describe a label: tokens without digits, outside handles, hashtags and URLs."""
    return frozenset(token for token in tokenize(_NOT_WORDS.sub(" ", text)) if not any(character.isdigit() for character in token))


def base_form(word: str) -> str:
    """A word without a plural `s`, to tell that `roadmap` adds nothing to a description saying `roadmaps`."""
    if len(word) > MIN_TOKEN_LENGTH and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


# Messages are tokenized again for every label, example and wrong run they are compared with.
@functools.cache
def token_set(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


def one_line(text: str) -> str:
    return " ".join(text.split())


def placeholders(text: str) -> frozenset[str]:
    """Names of the `{{name}}` placeholders in a prompt component."""
    return frozenset(_PLACEHOLDER.findall(text))


def without_placeholders(text: str) -> str:
    return _PLACEHOLDER.sub("", text)


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
