"""The @consumer example of docs/routing.rst, as an app's consumers.py."""

# docs: start
from channels import Group
from channels.decorators import consumer


@consumer("reports.build", "reports.rebuild")
def build_report(message):
    Group("report-watchers").send({"text": f"Report {message['name']} is ready"})
# docs: end
