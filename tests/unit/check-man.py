#!/usr/bin/env python3
"""check-man.py SOURCE_ROOT BUCKETFS: the man pages cannot fall behind the code.

Fails (exit 1, naming each gap) when
- a key of the table in src/cli/config.c has no entry (".TP" then ".B key")
  in man/bucketfs.conf.5;
- a long option printed by `bucketfs --help`, a subcommand of its usage
  lines, or a long option of `bucketfs SUBCOMMAND --help` is missing from
  man/bucketfs.1;
- a word of the -o paragraph of `bucketfs --help` is in neither page;
- a mount option that src/cli/config.c passes on to FUSE or ignores is not
  listed in man/bucketfs.1;
- groff (and mandoc, when installed) warn about either page.
"""
import os
import re
import shutil
import subprocess
import sys


def roff_words(text):
    """The page with roff's escapes for '-' undone, for plain searching."""
    return text.replace("\\-", "-").replace("\\&", "")


def c_array(src, name):
    """The string literals of `static const ... NAME[] = { ... };` in src."""
    m = re.search(r"\b%s\[\]\s*=\s*\{(.*?)\};" % re.escape(name), src, re.S)
    if not m:
        raise SystemExit("check-man: cannot find %s[] in src/cli/config.c" % name)
    return m.group(1)


def config_keys(src):
    return re.findall(r'\{"([a-z_0-9]+)",\s*V_', c_array(src, "keys"))


def passed_and_ignored(src):
    words = []
    for arr in ("fuse_pass", "fuse_pass_prefix", "ignored"):
        words += re.findall(r'"([^"]+)"', c_array(src, arr))
    return words


def help_text(bucketfs, *args):
    r = subprocess.run([bucketfs, *args, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise SystemExit("check-man: `bucketfs %s --help` exited %d: %s"
                         % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def o_words(text):
    """The option words of the -o paragraph of the main --help."""
    lines = text.splitlines()
    out, inside = [], False
    for line in lines:
        if re.match(r"\s+-o\b", line):
            inside = True
            line = line.split("mount options:", 1)[-1] if "mount options:" in line else ""
        elif inside and re.match(r"\s+-", line):
            break
        if inside:
            out += re.findall(r"\b([a-z][a-z_]*)=?", line)
    filler = {"config", "keys", "as", "key", "value", "and", "mount", "options"}
    return [w for w in out if w not in filler]


def lint(path):
    problems = []
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True,
                       text=True)
    if r.returncode != 0 or r.stderr.strip():
        problems.append("groff -ww on %s: %s" % (path, r.stderr.strip() or r.returncode))
    if shutil.which("mandoc"):
        r = subprocess.run(["mandoc", "-Tlint", "-Wwarning", path], capture_output=True,
                           text=True)
        if r.stdout.strip() or r.stderr.strip():
            problems.append("mandoc -Tlint on %s: %s" % (path, (r.stdout + r.stderr).strip()))
    return problems


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, bucketfs = sys.argv[1], sys.argv[2]
    with open(os.path.join(root, "src/cli/config.c")) as f:
        src = f.read()
    man1_path = os.path.join(root, "man/bucketfs.1")
    man5_path = os.path.join(root, "man/bucketfs.conf.5")
    with open(man1_path) as f:
        man1 = roff_words(f.read())
    with open(man5_path) as f:
        man5 = roff_words(f.read())
    problems = []

    keys = config_keys(src)
    if len(keys) < 20:
        problems.append("only %d keys found in config.c's table: the parser is out of date"
                        % len(keys))
    entries = set(re.findall(r"^\.TP\n\.B ([a-z_0-9]+)\s*$", man5, re.M))
    for k in keys:
        if k not in entries:
            problems.append("bucketfs.conf.5 has no entry (.TP/.B %s) for config key %s" % (k, k))

    main_help = help_text(bucketfs)
    longs = sorted(set(re.findall(r"(?<![\w-])--([a-z][a-z-]*)", main_help)))
    if "config" not in longs or "foreground" not in longs:
        problems.append("`bucketfs --help` lists no --config/--foreground: parser out of date")
    for opt in longs:
        if "--" + opt not in man1:
            problems.append("bucketfs.1 does not mention --%s (from bucketfs --help)" % opt)
    subs = re.findall(r"^\s*(?:usage:)?\s*bucketfs ([a-z]+) ", main_help, re.M)
    for sub in subs:
        if "bucketfs %s" % sub not in man1:
            problems.append("bucketfs.1 does not describe the subcommand %s" % sub)
        for opt in set(re.findall(r"(?<![\w-])--([a-z][a-z-]*)", help_text(bucketfs, sub))):
            if "--" + opt not in man1:
                problems.append("bucketfs.1 does not mention --%s of bucketfs %s" % (opt, sub))
    for w in o_words(main_help):
        if not re.search(r"\b%s\b" % re.escape(w), man1 + man5):
            problems.append("-o %s (bucketfs --help) is in neither man page" % w)
    for w in passed_and_ignored(src):
        if not re.search(r"(?<![\w-])%s(?!\w)" % re.escape(w.rstrip("=")), man1):
            problems.append("bucketfs.1 MOUNT OPTIONS does not list %s (config.c)" % w)

    problems += lint(man1_path) + lint(man5_path)
    for p in problems:
        print("FAIL: " + p)
    print("%d config keys, %d long options, %d subcommands checked; %d problem(s)"
          % (len(keys), len(longs), len(subs), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
