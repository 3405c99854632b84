"""Realistic sample data for the tracker, one data set per demo tenant.

Each data set has its own project names, so a test (or a person) can tell at a glance whose
data a page shows. :func:`seed` writes one data set into the bound tenant in one transaction,
and only into a tenant that has no members yet, so it is safe to run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from examples.tracker.models import Comment, Member, Priority, Project, Role, Task, TaskStatus
from tenantry import Tenantry

__all__ = ["DATASETS", "Dataset", "seed"]


@dataclass(frozen=True)
class TaskSeed:
    title: str
    status: TaskStatus = TaskStatus.todo
    priority: Priority = Priority.normal
    assignee: str | None = None
    due_in_days: int | None = None
    description: str = ""
    comments: tuple[tuple[str, str], ...] = ()
    """(author email, body) pairs."""


@dataclass(frozen=True)
class ProjectSeed:
    key: str
    name: str
    description: str
    owner: str
    tasks: tuple[TaskSeed, ...] = ()


@dataclass(frozen=True)
class Dataset:
    members: tuple[tuple[str, str, Role, str], ...]
    """(email, name, role, job title)."""
    projects: tuple[ProjectSeed, ...] = field(default=())


T, P, S = TaskSeed, Priority, TaskStatus

DATASETS: dict[str, Dataset] = {
    "acme": Dataset(
        members=(
            ("wile@acme.example", "Wile E. Coyote", Role.owner, "Head of Research"),
            ("ada@acme.example", "Ada Ramirez", Role.admin, "Engineering Manager"),
            ("tom@acme.example", "Tom Okafor", Role.member, "Product Designer"),
            ("lena@acme.example", "Lena Fischer", Role.member, "QA Engineer"),
        ),
        projects=(
            ProjectSeed(
                "RKT",
                "Rocket Skates v2",
                "Second generation of the rocket-powered roller skates.",
                "wile@acme.example",
                (
                    T(
                        "Redesign the fuel valve",
                        S.doing,
                        P.high,
                        "ada@acme.example",
                        5,
                        "The valve sticks open above 40 mph.",
                        (
                            ("ada@acme.example", "Prototype B holds up to 55 mph on the test track."),
                            ("wile@acme.example", "Good. Try 70 mph next week."),
                        ),
                    ),
                    T("Write the safety manual", S.todo, P.normal, "tom@acme.example", 14),
                    T(
                        "Order heat-resistant wheels",
                        S.done,
                        P.low,
                        "lena@acme.example",
                        -3,
                        comments=(("lena@acme.example", "Delivered on Monday."),),
                    ),
                    T("Brake test on a cliff edge", S.todo, P.urgent, "wile@acme.example", 2),
                ),
            ),
            ProjectSeed(
                "MAG",
                "Giant Magnet Recall",
                "Recall and refit of the 2023 giant magnets.",
                "ada@acme.example",
                (
                    T("Contact every customer", S.doing, P.high, "tom@acme.example", 7),
                    T("Ship shielded replacement magnets", S.todo, P.normal, "lena@acme.example", 21),
                ),
            ),
            ProjectSeed(
                "ANV",
                "Anvil Delivery Drones",
                "Same-day anvil delivery anywhere in the desert.",
                "wile@acme.example",
                (
                    T("Pick a drone vendor", S.done, P.normal, "ada@acme.example", -10),
                    T(
                        "Payload release mechanism",
                        S.doing,
                        P.urgent,
                        "wile@acme.example",
                        3,
                        comments=(("tom@acme.example", "The release fires early in crosswinds."),),
                    ),
                    T("Flight permit for the canyon", S.todo, P.low, None, 30),
                ),
            ),
        ),
    ),
    "globex": Dataset(
        members=(
            ("hank@globex.example", "Hank Scorpio", Role.owner, "CEO"),
            ("homer@globex.example", "Homer Simpson", Role.member, "Motivation Specialist"),
            ("mindy@globex.example", "Mindy Simmons", Role.admin, "Operations Lead"),
        ),
        projects=(
            ProjectSeed(
                "HAM",
                "Hammock District",
                "Employee wellness district on the Cypress Creek campus.",
                "hank@globex.example",
                (
                    T(
                        "Source 400 hammocks",
                        S.doing,
                        P.normal,
                        "homer@globex.example",
                        10,
                        comments=(("homer@globex.example", "Tested twelve of them personally."),),
                    ),
                    T("Shade sails over the lawn", S.todo, P.low, "mindy@globex.example", 20),
                ),
            ),
            ProjectSeed(
                "DDA",
                "Doomsday Device Audit",
                "Annual compliance audit of the doomsday device.",
                "mindy@globex.example",
                (
                    T("Inventory the laser parts", S.done, P.high, "mindy@globex.example", -5),
                    T(
                        "Update the safety interlocks",
                        S.doing,
                        P.urgent,
                        "hank@globex.example",
                        1,
                        "Interlocks must survive a power cut.",
                        (
                            ("hank@globex.example", "Run the tests on Tuesday, not during the demo."),
                            ("mindy@globex.example", "Booked for Tuesday 10:00."),
                        ),
                    ),
                    T("File the audit report", S.todo, P.normal, None, 15),
                ),
            ),
            ProjectSeed(
                "CYP",
                "Cypress Creek Campus",
                "New headquarters campus and relocation of staff.",
                "hank@globex.example",
                (
                    T("Relocation packages for staff", S.todo, P.high, "mindy@globex.example", 12),
                    T("Monorail feasibility study", S.todo, P.low, "homer@globex.example", 45),
                ),
            ),
        ),
    ),
    "initech": Dataset(
        members=(
            ("bill@initech.example", "Bill Lumbergh", Role.owner, "Division Vice President"),
            ("peter@initech.example", "Peter Gibbons", Role.member, "Software Engineer"),
            ("samir@initech.example", "Samir Nagheenanajar", Role.member, "Software Engineer"),
            ("milton@initech.example", "Milton Waddams", Role.member, "Collator"),
        ),
        projects=(
            ProjectSeed(
                "TPS",
                "TPS Report Cover Sheets",
                "Every TPS report gets the new cover sheet.",
                "bill@initech.example",
                (
                    T(
                        "Send the memo about cover sheets",
                        S.done,
                        P.normal,
                        "bill@initech.example",
                        -7,
                        comments=(("peter@initech.example", "Yeah, I got the memo."),),
                    ),
                    T("Update the report template", S.doing, P.normal, "peter@initech.example", 4),
                ),
            ),
            ProjectSeed(
                "Y2K",
                "Y2K Remediation",
                "Fix two-digit years in the bank software.",
                "bill@initech.example",
                (
                    T(
                        "Find every two-digit year",
                        S.doing,
                        P.high,
                        "samir@initech.example",
                        9,
                        comments=(("samir@initech.example", "Found 1,200 of them in the interest module."),),
                    ),
                    T("Test the rollover on a staging box", S.todo, P.urgent, "peter@initech.example", 6),
                ),
            ),
            ProjectSeed(
                "STP",
                "Stapler Inventory",
                "Track the office's staplers, red ones included.",
                "milton@initech.example",
                (
                    T(
                        "Return the red stapler to Milton",
                        S.todo,
                        P.high,
                        None,
                        1,
                        comments=(("milton@initech.example", "I was told I could keep my stapler."),),
                    ),
                    T("Move Milton's desk to storage room B", S.todo, P.low, "bill@initech.example", 3),
                ),
            ),
        ),
    ),
}


def seed(tn: Tenantry, slug: str, dataset: str | None = None) -> bool:
    """Write the data set ``dataset`` (default: the one named like the tenant) into tenant
    ``slug``; returns ``False`` (and writes nothing) when the tenant has members already."""
    data = DATASETS[dataset or slug]
    today = date.today()
    with tn.tenant(slug), Session(tn.engine()) as session, session.begin():
        if session.scalar(sa.select(sa.func.count()).select_from(Member)):
            return False
        members = {
            email: Member(email=email, name=name, role=role, title=title) for email, name, role, title in data.members
        }
        session.add_all(members.values())
        session.flush()
        for spec in data.projects:
            project = Project(
                key=spec.key, name=spec.name, description=spec.description, owner_id=members[spec.owner].id
            )
            session.add(project)
            session.flush()
            for item in spec.tasks:
                task = Task(
                    project_id=project.id,
                    title=item.title,
                    description=item.description,
                    status=item.status,
                    priority=item.priority,
                    assignee_id=members[item.assignee].id if item.assignee else None,
                    due_on=today + timedelta(days=item.due_in_days) if item.due_in_days is not None else None,
                )
                session.add(task)
                session.flush()
                session.add_all(Comment(task_id=task.id, author_id=members[a].id, body=b) for a, b in item.comments)
    return True
