"""The nine databases of the mediation platform, as SQLAlchemy 2.x typed models.

Fields the demo generator invented are listed per row in `synthetic_fields`, so nobody
mistakes generated metadata for real records.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (JSON, Column, Date, DateTime, ForeignKey, Integer, Numeric, String, Table,
                        Text, func)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from kb.fingerprints import text_fingerprint


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


case_mediators = Table(
    "case_mediators", Base.metadata,
    Column("case_id", ForeignKey("dispute_cases.id", ondelete="CASCADE"), primary_key=True),
    Column("mediator_id", ForeignKey("mediators.id", ondelete="CASCADE"), primary_key=True),
)

material_cases = Table(
    "learning_material_cases", Base.metadata,
    Column("material_id", ForeignKey("learning_materials.id", ondelete="CASCADE"), primary_key=True),
    Column("case_id", ForeignKey("dispute_cases.id", ondelete="CASCADE"), primary_key=True),
)


class Organisation(Base):
    """A mediation committee; `path` holds the ids from the root down, for subtree queries."""
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: city / county / township / village / industry / professional
    level: Mapped[str] = mapped_column(String(20))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    path: Mapped[str] = mapped_column(String(200), default="", index=True)
    synthetic: Mapped[bool] = mapped_column(default=False)

    parent: Mapped[Organisation | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Organisation]] = relationship(back_populates="parent")

    def ancestor_ids(self) -> list[int]:
        return [int(part) for part in self.path.strip("/").split("/") if part]


class Mediator(Base):
    __tablename__ = "mediators"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    full_time: Mapped[bool] = mapped_column(default=False)
    specialities: Mapped[list] = mapped_column(default=list)
    gender: Mapped[str | None] = mapped_column(String(4))
    birth_year: Mapped[int | None]
    phone: Mapped[str | None] = mapped_column(String(30))
    synthetic: Mapped[bool] = mapped_column(default=False)

    organisation: Mapped[Organisation] = relationship()


class Expert(Base):
    __tablename__ = "experts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    #: lawyer, doctor, engineer, accountant, ...
    field: Mapped[str] = mapped_column(String(50), index=True)
    title: Mapped[str | None] = mapped_column(String(100))
    affiliation: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(30))
    synthetic: Mapped[bool] = mapped_column(default=False)


class DisputeCase(Base):
    """One dispute record; the searchable unit of casekb."""
    __tablename__ = "dispute_cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    case_number: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    #: where the record came from (file or dataset), not the mediation source
    dataset: Mapped[str | None] = mapped_column(String(200))
    #: 主动调解 / 申请调解 / 委托移送
    intake: Mapped[str | None] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(50), index=True)
    cause: Mapped[str | None] = mapped_column(String(100), index=True)
    region: Mapped[str | None] = mapped_column(String(100), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    received_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    closed_on: Mapped[dt.date | None] = mapped_column(Date)
    facts: Mapped[str] = mapped_column(Text)
    #: the facts with spacing, punctuation, width and case ignored: equal for duplicate records
    fingerprint: Mapped[str | None] = mapped_column(
        String(32), index=True, default=lambda ctx: text_fingerprint(ctx.get_current_parameters()["facts"]))
    process: Mapped[str | None] = mapped_column(Text)
    #: 成功 / 不成功 / 终止; empty while open
    outcome: Mapped[str | None] = mapped_column(String(10), index=True)
    agreement_terms: Mapped[str | None] = mapped_column(Text)
    agreed_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    performance: Mapped[str | None] = mapped_column(String(100))
    satisfaction: Mapped[int | None]
    elements: Mapped[list] = mapped_column(default=list)
    synthetic_fields: Mapped[list] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    organisation: Mapped[Organisation | None] = relationship()
    mediators: Mapped[list[Mediator]] = relationship(secondary=case_mediators)
    parties: Mapped[list[Party]] = relationship(back_populates="case", cascade="all, delete-orphan")
    exemplar: Mapped[ExemplarMark | None] = relationship(back_populates="case", cascade="all, delete-orphan")
    tracking: Mapped[UnsuccessfulCaseTracking | None] = relationship(
        back_populates="case", cascade="all, delete-orphan")
    reviews: Mapped[list[QualityReview]] = relationship(back_populates="case", cascade="all, delete-orphan")

    @validates("facts")
    def _fingerprint_facts(self, _key: str, facts: str) -> str:
        self.fingerprint = text_fingerprint(facts)
        return facts


class Party(Base):
    """A person or organisation in a dispute. Every field here is personal data."""
    __tablename__ = "parties"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_cases.id", ondelete="CASCADE"), index=True)
    #: 申请人 / 被申请人 / 原告 / 被告 / 第三人 ...
    role: Mapped[str] = mapped_column(String(20))
    #: person / organisation
    kind: Mapped[str] = mapped_column(String(20), default="person")
    name: Mapped[str] = mapped_column(String(200))
    sex: Mapped[str | None] = mapped_column(String(4))
    ethnicity: Mapped[str | None] = mapped_column(String(20))
    age: Mapped[int | None]
    occupation: Mapped[str | None] = mapped_column(String(100))
    id_number: Mapped[str | None] = mapped_column(String(30))
    phone: Mapped[str | None] = mapped_column(String(30))
    address: Mapped[str | None] = mapped_column(String(300))

    case: Mapped[DisputeCase] = relationship(back_populates="parties")


class ExemplarMark(Base):
    """Marks a case as an exemplar (优秀案例) for training and precedent search."""
    __tablename__ = "exemplar_marks"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_cases.id", ondelete="CASCADE"), unique=True)
    curator: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    techniques: Mapped[list] = mapped_column(default=list)
    marked_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())
    synthetic: Mapped[bool] = mapped_column(default=False)

    case: Mapped[DisputeCase] = relationship(back_populates="exemplar")


class UnsuccessfulCaseTracking(Base):
    """Where an unsuccessful case went next and what became of it there."""
    __tablename__ = "unsuccessful_case_tracking"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_cases.id", ondelete="CASCADE"), unique=True)
    #: court / arbitration / petition / administrative / other
    destination: Mapped[str] = mapped_column(String(20), index=True)
    referred_on: Mapped[dt.date | None] = mapped_column(Date)
    later_result: Mapped[str | None] = mapped_column(Text)
    synthetic: Mapped[bool] = mapped_column(default=False)

    case: Mapped[DisputeCase] = relationship(back_populates="tracking")


class QualityReview(Base):
    """A review of a case file (卷宗) and its follow-up visit."""
    __tablename__ = "quality_reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_cases.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    scores: Mapped[dict] = mapped_column(default=dict)
    total_score: Mapped[int]
    #: 优秀 / 合格 / 不合格
    verdict: Mapped[str] = mapped_column(String(10))
    reviewed_on: Mapped[dt.date] = mapped_column(Date)
    synthetic: Mapped[bool] = mapped_column(default=False)

    case: Mapped[DisputeCase] = relationship(back_populates="reviews")


class LearningMaterial(Base):
    __tablename__ = "learning_materials"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    #: law / guide / training-note / case-analysis
    kind: Mapped[str] = mapped_column(String(30))
    body: Mapped[str] = mapped_column(Text)
    synthetic: Mapped[bool] = mapped_column(default=False)

    cases: Mapped[list[DisputeCase]] = relationship(secondary=material_cases)


class IndexTask(Base):
    """Outbox row: a searchable record changed in the same transaction and must be (re)indexed."""
    __tablename__ = "index_tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())
