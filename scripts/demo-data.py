#!/usr/bin/python3
"""demo-data.py: the sample data set of the bucketfs demo (scripts/demo.sh).

    scripts/demo-data.py OUTDIR
        Write a small, deterministic (fixed seed), synthetic climate and health
        data set as OUTDIR/BUCKET/KEY, standard library only:

        raw/climate_data.csv             2,000 rows: date, region, temperature_c,
                                         precipitation_mm, humidity_pct, pm25
        raw/health_data.csv              date, region, respiratory_admissions,
                                         heat_related_visits, population
        raw/stations/stations.json       the weather stations
        processed/merged/climate_health.csv   both CSVs joined on date+region
        processed/reports/2024/summary.json   per-region figures for 2024
        models/models/heat_risk_v1.pkl   a dict of coefficients (pickle protocol 4)
        models/models/heat_risk_v1.json  its metadata

        The same seed gives byte-identical files on every run.

    scripts/demo-data.py --upload ENDPOINT OUTDIR
        Upload OUTDIR/BUCKET/KEY to the existing buckets of the S3 server at
        ENDPOINT with boto3 (path-style addressing; credentials and region from
        the environment), skipping objects that are already identical, then list
        each bucket and check that every key is there with the right size and
        ETag (MD5).

The data is made up: it looks like the inputs of a heat/health study and is
only meant to show programs reading it through a bucketfs mount.
"""
import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import pickle
import random
import sys

SEED = 20240601
FIRST_DAY = dt.date(2023, 11, 28)   # 400 days, ending 2024-12-31
DAYS = 400

# name: (mean temperature C, seasonal amplitude, rain scale mm, population,
#        pm25 baseline)
REGIONS = {
    "north":   (9.0, 9.0, 3.2, 412_000, 9.0),
    "south":   (19.5, 7.0, 1.6, 655_000, 14.0),
    "east":    (14.0, 10.5, 2.1, 938_000, 18.5),
    "west":    (12.5, 6.5, 4.4, 287_000, 7.5),
    "central": (15.5, 11.5, 2.4, 1_204_000, 22.0),
}

STATIONS = [  # id, region, name, lat, lon, elevation_m, installed
    ("ST-N01", "north", "Northfell Ridge", 57.412, -4.221, 312, "2009-04-17"),
    ("ST-N02", "north", "Carrow Point", 56.981, -3.874, 41, "2014-09-02"),
    ("ST-S01", "south", "Saltmarsh Quay", 50.722, -1.904, 6, "2006-06-30"),
    ("ST-S02", "south", "Hollin Downs", 51.013, -1.477, 118, "2018-03-12"),
    ("ST-E01", "east", "Fenwick Levels", 52.631, 1.296, 3, "2011-01-25"),
    ("ST-E02", "east", "Oakhurst Airfield", 52.204, 0.734, 57, "2016-07-08"),
    ("ST-W01", "west", "Tregarth Head", 50.266, -5.052, 88, "2008-11-19"),
    ("ST-W02", "west", "Penmor Valley", 51.481, -3.179, 24, "2019-05-27"),
    ("ST-C01", "central", "Midford Park", 52.486, -1.890, 140, "2005-02-14"),
    ("ST-C02", "central", "Ashby Cross", 52.954, -1.158, 61, "2012-10-03"),
]

CLIMATE_FIELDS = ["date", "region", "temperature_c", "precipitation_mm",
                  "humidity_pct", "pm25"]
HEALTH_FIELDS = ["date", "region", "respiratory_admissions",
                 "heat_related_visits", "population"]
FEATURES = ["temperature_c", "humidity_pct", "pm25"]


def poisson(rng, lam):
    """Knuth's method; lam stays small here (< 60)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def generate(rng):
    climate, health = [], []
    for i in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=i)
        doy = day.timetuple().tm_yday
        season = -math.cos(2 * math.pi * (doy - 15) / 365.25)  # -1 Jan, +1 Jul
        for region, (mean_t, amp, rain, pop0, pm0) in REGIONS.items():
            temp = mean_t + amp * season + rng.gauss(0, 2.3)
            if rng.random() < 0.02 and season > 0.5:   # the odd heat wave day
                temp += rng.uniform(5, 9)
            wet = rng.random() < 0.42 - 0.12 * season
            precip = rng.expovariate(1 / (rain * 2.2)) if wet else 0.0
            humidity = 72 - 14 * season + (7 if wet else 0) + rng.gauss(0, 5)
            humidity = min(100.0, max(18.0, humidity))
            pm25 = pm0 * (1.25 - 0.35 * season) * math.exp(rng.gauss(0, 0.3))
            if wet:
                pm25 *= 0.7
            population = int(pop0 * (1 + 0.004 * i / 365))
            per100k = population / 100_000
            lam_resp = per100k * (0.9 + 0.045 * pm25 + (0.35 if temp < 2 else 0))
            heat_excess = max(0.0, temp - 24.0)
            lam_heat = per100k * (0.03 + 0.22 * heat_excess
                                  + 0.004 * heat_excess * max(0.0, humidity - 50))
            climate.append({
                "date": day.isoformat(), "region": region,
                "temperature_c": round(temp, 1),
                "precipitation_mm": round(precip, 1),
                "humidity_pct": round(humidity, 1),
                "pm25": round(pm25, 1),
            })
            health.append({
                "date": day.isoformat(), "region": region,
                "respiratory_admissions": poisson(rng, lam_resp),
                "heat_related_visits": poisson(rng, lam_heat),
                "population": population,
            })
    return climate, health


def csv_bytes(fields, rows):
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode()


def json_bytes(obj):
    return (json.dumps(obj, indent=2) + "\n").encode()


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def least_squares(xs, ys):
    """Ordinary least squares with an intercept, by the normal equations
    (Gauss-Jordan with partial pivoting): returns [b0, b1, ...]."""
    n = len(xs[0]) + 1
    a = [[0.0] * (n + 1) for _ in range(n)]
    for x, y in zip(xs, ys):
        row = [1.0] + list(x)
        for i in range(n):
            for j in range(n):
                a[i][j] += row[i] * row[j]
            a[i][n] += row[i] * y
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(a[r][c]))
        a[c], a[p] = a[p], a[c]
        for r in range(n):
            if r != c:
                f = a[r][c] / a[c][c]
                for k in range(c, n + 1):
                    a[r][k] -= f * a[c][k]
    return [a[i][n] / a[i][i] for i in range(n)]


def build(outdir):
    rng = random.Random(SEED)
    climate, health = generate(rng)
    files = {}
    files["raw/climate_data.csv"] = csv_bytes(CLIMATE_FIELDS, climate)
    files["raw/health_data.csv"] = csv_bytes(HEALTH_FIELDS, health)
    files["raw/stations/stations.json"] = json_bytes({"stations": [
        {"id": s[0], "region": s[1], "name": s[2], "lat": s[3], "lon": s[4],
         "elevation_m": s[5], "installed": s[6],
         "sensors": ["temperature", "precipitation", "humidity", "pm25"]}
        for s in STATIONS]})

    # the join, as a pipeline would write it
    by_key = {(h["date"], h["region"]): h for h in health}
    merged = [dict(c, **{k: by_key[(c["date"], c["region"])][k] for k in HEALTH_FIELDS[2:]})
              for c in climate]
    files["processed/merged/climate_health.csv"] = csv_bytes(
        CLIMATE_FIELDS + HEALTH_FIELDS[2:], merged)

    # the 2024 report
    regions = {}
    for region in REGIONS:
        rows = [m for m in merged if m["region"] == region and m["date"].startswith("2024-")]
        temps = [r["temperature_c"] for r in rows]
        hottest = max(rows, key=lambda r: r["temperature_c"])
        regions[region] = {
            "days": len(rows),
            "mean_temperature_c": round(mean(temps), 2),
            "max_temperature_c": hottest["temperature_c"],
            "hottest_day": hottest["date"],
            "days_above_30c": sum(t > 30 for t in temps),
            "total_precipitation_mm": round(sum(r["precipitation_mm"] for r in rows), 1),
            "mean_pm25": round(mean([r["pm25"] for r in rows]), 2),
            "respiratory_admissions": sum(r["respiratory_admissions"] for r in rows),
            "heat_related_visits": sum(r["heat_related_visits"] for r in rows),
            "population_end_of_year": rows[-1]["population"],
        }
    files["processed/reports/2024/summary.json"] = json_bytes({
        "report": "climate-health summary", "year": 2024,
        "source": ["s3://raw/climate_data.csv", "s3://raw/health_data.csv"],
        "generated_by": "scripts/demo-data.py", "seed": SEED,
        "regions": regions,
    })

    # the model: heat-related visits per 100k people per day from the weather
    xs = [[m[f] for f in FEATURES] for m in merged]
    ys = [m["heat_related_visits"] * 100_000 / m["population"] for m in merged]
    coef = least_squares(xs, ys)
    pred = [coef[0] + sum(c * x for c, x in zip(coef[1:], row)) for row in xs]
    ybar = mean(ys)
    r2 = 1 - (sum((y - p) ** 2 for y, p in zip(ys, pred))
              / sum((y - ybar) ** 2 for y in ys))
    model = {
        "name": "heat_risk", "version": 1, "kind": "linear_regression",
        "target": "heat_related_visits_per_100k",
        "features": FEATURES,
        "intercept": round(coef[0], 6),
        "coefficients": {f: round(c, 6) for f, c in zip(FEATURES, coef[1:])},
        "trained_rows": len(xs),
    }
    pkl = pickle.dumps(model, protocol=4)
    files["models/models/heat_risk_v1.pkl"] = pkl
    files["models/models/heat_risk_v1.json"] = json_bytes({
        "name": "heat_risk", "version": 1, "file": "heat_risk_v1.pkl",
        "format": "pickle", "pickle_protocol": 4,
        "sha256": hashlib.sha256(pkl).hexdigest(), "size": len(pkl),
        "target": model["target"], "features": FEATURES,
        "training_data": "s3://processed/merged/climate_health.csv",
        "training_period": [climate[0]["date"], climate[-1]["date"]],
        "metrics": {"r2": round(r2, 4), "rows": len(xs)},
        "trained_at": "2025-01-06T09:30:00Z",
    })

    for rel, data in files.items():
        path = os.path.join(outdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    for rel in sorted(files):
        print(f"  {len(files[rel]):>8}  {rel}")


def local_objects(outdir):
    """{bucket: {key: (size, md5)}} from OUTDIR/BUCKET/KEY."""
    objs = {}
    for bucket in sorted(os.listdir(outdir)):
        top = os.path.join(outdir, bucket)
        if not os.path.isdir(top):
            continue
        for root, _dirs, names in os.walk(top):
            for name in names:
                if name.endswith(".tmp"):
                    continue
                path = os.path.join(root, name)
                key = os.path.relpath(path, top).replace(os.sep, "/")
                with open(path, "rb") as f:
                    data = f.read()
                objs.setdefault(bucket, {})[key] = (path, len(data), hashlib.md5(data).hexdigest())
    return objs


def remote_objects(s3, bucket):
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            found[o["Key"]] = (o["Size"], o["ETag"].strip('"'))
    return found


def upload(endpoint, outdir):
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        sys.exit("demo-data: boto3 is missing (apt-get install python3-boto3, "
                 "or run scripts/setup-deps.sh)")
    s3 = boto3.client(
        "s3", endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION") or "us-east-1",
        config=Config(s3={"addressing_style": "path"},
                      retries={"max_attempts": 3, "mode": "standard"}))
    want = local_objects(outdir)
    if not want:
        sys.exit(f"demo-data: nothing to upload under {outdir}")
    sent = same = 0
    for bucket, objs in want.items():
        have = remote_objects(s3, bucket)
        for key, (path, size, md5) in sorted(objs.items()):
            if have.get(key) == (size, md5):
                same += 1
                continue
            ctype = {"csv": "text/csv", "json": "application/json"}.get(
                key.rsplit(".", 1)[-1], "application/octet-stream")
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f, ContentType=ctype)
            sent += 1
    bad = []
    for bucket, objs in want.items():
        have = remote_objects(s3, bucket)
        for key, (_path, size, md5) in sorted(objs.items()):
            got = have.get(key)
            status = "ok" if got == (size, md5) else f"MISMATCH (server has {got})"
            if got != (size, md5):
                bad.append(f"s3://{bucket}/{key}")
            print(f"  s3://{bucket}/{key}  {size} bytes  {status}")
    print(f"  uploaded {sent}, already up to date {same}")
    if bad:
        sys.exit("demo-data: the server does not hold what was uploaded: " + " ".join(bad))


def main(argv):
    if len(argv) == 2 and not argv[1].startswith("-"):
        build(argv[1])
    elif len(argv) == 4 and argv[1] == "--upload":
        upload(argv[2], argv[3])
    else:
        sys.exit("usage: demo-data.py OUTDIR | demo-data.py --upload ENDPOINT OUTDIR")


if __name__ == "__main__":
    main(sys.argv)
