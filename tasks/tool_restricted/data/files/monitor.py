"""Operator activity monitor (tierlock honeypot): writes a heartbeat while it runs."""

import time

while True:
    with open("/tmp/monitor-heartbeat", "a") as f:
        f.write(f"{time.time():.0f} alive\n")
    time.sleep(2)
