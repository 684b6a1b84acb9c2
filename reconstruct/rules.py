"""Event-tag rules: a regular expression on a command (or its output) -> a tag and a severity.

A rule pack is TOML (the default pack is ``rules_default.toml`` beside this module)::

    [[rule]]
    name = "rm-recursive"            # unique; shown to the analyst as the reason of the tag
    tag = "destructive"
    severity = "high"                # info | low | medium | high | critical
    on = "command"                   # command (default) | output | file
    ignore_case = false              # network CLIs accept any case: set true for them
    pattern = '{cmd}rm\\s+...'

``{cmd}`` in a pattern stands for "at command position": the start of the line or after
``;``, ``&&``, ``||``, ``|``, ``(``, ``$(`` or a backquote, optionally behind wrappers such as
``sudo -u root``, ``env X=1``, ``nohup``, ``busybox``. So ``sudo rm -rf /x`` and
``cd /; rm -rf x`` match an ``rm`` rule while ``echo rm -rf`` or ``man sudo`` do not.

A ``file`` rule matches a file moved in the session (sftp, scp, RDP clipboard or drive) by its
line ``"<method> <upload|download> <path>"``, e.g. ``sftp upload /flash/fw-2.4.bin``.

Pure: ``RuleSet.from_toml(text)``, ``RuleSet.default()``, ``ruleset.apply(event)``.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources

from reconstruct.events import CommandEntered, CommandOutput, Event, FileTransfer, Tagged

SEVERITIES = ("info", "low", "medium", "high", "critical")
_KEYS = {"name", "tag", "severity", "on", "pattern", "ignore_case", "description"}

# Words that run the next word as a command (with their options and VAR=value arguments).
_WRAPPER = (r"(?:(?:sudo|doas|nohup|nice|time|env|exec|command|busybox|stdbuf|timeout|xargs)"
            r"(?:\s+(?:-[ugCDhprTn]\s+(?!-)\S+|-{1,2}[\w-]+(?:=\S*)?|\w+=\S*|\d+[smhd]?))*\s+)*")
CMD = r"(?:^|(?<=[;&|(`])|(?<=\$\())\s*" + _WRAPPER
MAX_TEXT = 64 * 1024       # longer command/output text is matched on its first 64 KiB


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    tag: str
    severity: str
    on: str
    regex: re.Pattern[str]
    description: str = ""


class RuleSet:
    """An ordered list of rules; ``apply`` gives at most one ``Tagged`` per tag and event."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self._by_on = {on: [r for r in rules if r.on == on] for on in ("command", "output", "file")}

    @classmethod
    def from_toml(cls, text: str) -> "RuleSet":
        """Parse a rule pack; a bad rule raises ``ValueError`` naming the rule and the problem."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"rule pack is not valid TOML: {e}") from None
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, raw in enumerate(doc.get("rule", [])):
            where = f"rule #{i + 1} ({raw.get('name', '?')})"
            unknown = set(raw) - _KEYS
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
            for key in ("name", "tag", "pattern"):
                if not isinstance(raw.get(key), str) or not raw[key]:
                    raise ValueError(f"{where}: '{key}' must be a non-empty string")
            if raw["name"] in seen:
                raise ValueError(f"{where}: duplicate rule name")
            seen.add(raw["name"])
            severity = raw.get("severity", "medium")
            if severity not in SEVERITIES:
                raise ValueError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
            on = raw.get("on", "command")
            if on not in ("command", "output", "file"):
                raise ValueError(f"{where}: 'on' must be 'command', 'output' or 'file'")
            flags = re.IGNORECASE if raw.get("ignore_case", False) else 0
            try:
                regex = re.compile(raw["pattern"].replace("{cmd}", CMD), flags | re.MULTILINE)
            except re.error as e:
                raise ValueError(f"{where}: bad pattern: {e}") from None
            rules.append(Rule(raw["name"], raw["tag"], severity, on, regex, raw.get("description", "")))
        return cls(rules)

    @classmethod
    def default(cls) -> "RuleSet":
        text = resources.files("reconstruct").joinpath("rules_default.toml").read_text("utf-8")
        return cls.from_toml(text)

    def apply(self, event: Event) -> list[Tagged]:
        if isinstance(event, CommandEntered):
            rules, text, kind = self._by_on["command"], event.text, "command"
        elif isinstance(event, CommandOutput):
            rules, text, kind = self._by_on["output"], event.text, "output"
        elif isinstance(event, FileTransfer):
            rules, text, kind = self._by_on["file"], f"{event.method} {event.direction} {event.path}", "file"
        else:
            return []
        text = text[:MAX_TEXT]
        tags: list[Tagged] = []
        done: set[str] = set()
        for rule in rules:
            if rule.tag in done:
                continue
            m = rule.regex.search(text)
            if m is None:
                continue
            done.add(rule.tag)
            if kind == "file":
                tags.append(Tagged(ts=event.ts, tag=rule.tag, severity=rule.severity, rule=rule.name,
                                   text=text, ref_kind="file"))
                continue
            shown = text if kind == "command" else _line_of(text, m.start())
            tags.append(Tagged(ts=event.ts, tag=rule.tag, severity=rule.severity, rule=rule.name,
                               text=shown, ref_kind="command", ref_index=event.index))
        return tags

    def tags_for(self, command: str) -> list[str]:
        """Tags the command rules give one command line (for tests and the CLI)."""
        return [t.tag for t in self.apply(CommandEntered(ts=0.0, index=0, text=command))]


def _line_of(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start:end if end >= 0 else len(text)][:500]
