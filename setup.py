from setuptools import find_packages, setup

setup(
    name="channels",
    version="0.1.0",
    description="Event-driven Django: WebSockets, long-lived HTTP and background work.",
    long_description=open("README.rst").read(),
    long_description_content_type="text/x-rst",
    license="BSD",
    packages=find_packages(exclude=["testproject", "testproject.*", "tests", "tests.*"]),
    include_package_data=True,
    # The JavaScript client (docs/client.rst) and the status page's files,
    # found by staticfiles and the template loader.
    package_data={"channels": ["static/channels/*", "templates/channels/*.html"]},
    python_requires=">=3.11",
    install_requires=[
        "Django>=5.2,<5.3",
        # hiredis: redis-py's C reply parser; about 10% less worker CPU per message.
        "redis[hiredis]>=5.0,<9",
        "Twisted>=24.7",
        "autobahn>=24.4",
        "msgpack>=1.0",
        # 0.16: the chunked-encoding smuggling fix (GHSA-vqfr-h8mv-ghfj, CVE-2025-43859).
        "h11>=0.16",
        # The interface server's static files (channels.interfaces.static_files).
        "whitenoise>=6.6",
        # Prometheus metrics (runwsserver/runworker --metrics): imported by the
        # server's and the worker's modules, off until asked for.
        "prometheus_client>=0.20",
    ],
    extras_require={
        "wsgi": ["gunicorn>=22"],
        "tests": [
            "gunicorn>=22",
            "websocket-client>=1.8",
            "requests>=2.31",
            "selenium>=4.20",
            "sphinx>=7",
            "ruff>=0.6",
            # Property-based tests of the interface server (tests/test_interface_fuzz.py).
            "hypothesis>=6.100",
            # make demo-cluster: the Procfile's processes, supervised together.
            "honcho>=2.0",
            # testproject/benchmark.py workers: the view that waits on
            # PostgreSQL (Django's own driver for it; skipped without it).
            "psycopg[binary]>=3.1",
            # The documented Prometheus config and alerting rules, read by the tests.
            "PyYAML>=6",
        ],
    },
    entry_points={},
    classifiers=[
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Programming Language :: Python :: 3",
    ],
)
