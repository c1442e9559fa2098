"""What machine a benchmark ran on, printed at the top of every bench script."""

import datetime
import os
import platform


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """1, 5 and 15 minute load averages: how busy the shared machine was."""
    try:
        with open("/proc/loadavg", encoding="utf-8") as loadavg:
            return " ".join(loadavg.read().split()[:3])
    except OSError:
        return "unknown"


def machine_info(**extra: str) -> None:
    """Print date, platform, CPU, Python, load and any `extra` lines (name=value)."""
    now = datetime.datetime.now(datetime.UTC).astimezone()
    print(f"date      {now:%Y-%m-%d %H:%M:%S %Z}")
    print(f"platform  {platform.platform()}")
    print(f"cpu       {cpu_model()} ({os.cpu_count()} logical CPUs visible)")
    print(f"python    {platform.python_version()}")
    print(f"load      {load_average()} (1, 5, 15 min load average, all processes)")
    for name, value in extra.items():
        print(f"{name:<9} {value}")
    print()
