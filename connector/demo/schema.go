// Package demo creates and animates a sample clinic: an IDENT-shaped
// PostgreSQL stand-in (spec §13) the connector can read like a real IDENT.
//
// Create builds schema dbo with IDENT's exact quoted names and the §13 type
// mapping (only the tables and columns the connector reads, plus a few
// realistic extra ones) and fills it with generated data that is the same for
// the same Options. Live keeps changing it like a working clinic.
//
// dbo holds nothing IDENT lacks. The helpers that stand in for SQL Server's
// own machinery live in schema svyazka_demo: the database-wide rowversion
// counter (a sequence; RowVersionExpr) and the id sequences. Its presence
// also marks a database as a demo clinic: Create resets a database that has
// it and refuses (ErrNotDemo) one that has a dbo schema without it, which may
// be a copy of a real IDENT.
package demo

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// HelperSchema is the schema of the demo's helper objects.
const HelperSchema = "svyazka_demo"

// RowVersionExpr is the SQL expression a writer to the demo sets
// Receptions.RowVersion to on every insert and update, as SQL Server does by
// itself: the next value of the database-wide counter as 8 big-endian bytes.
const RowVersionExpr = "int8send(nextval('" + HelperSchema + ".rowversion'))"

// ErrNotDemo is returned by Create for a database whose dbo schema was not
// made by Create.
var ErrNotDemo = errors.New("demo: the database has a dbo schema that is not a demo clinic; refusing to touch it")

// ddl creates the stand-in. Types follow §13: int→integer, bit→boolean,
// datetime→timestamp(3), rowversion→bytea, decimal→numeric(28,10),
// nvarchar→varchar/text, unknown type (Birthday)→text.
const ddl = `
CREATE SCHEMA svyazka_demo;
CREATE SEQUENCE svyazka_demo.rowversion;
CREATE SEQUENCE svyazka_demo.persons;
CREATE SEQUENCE svyazka_demo.receptions;
CREATE TABLE svyazka_demo.info (seed bigint NOT NULL, patients integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now());

CREATE SCHEMA dbo;
CREATE TABLE dbo."Persons" (
	"ID" integer PRIMARY KEY,
	"Surname" varchar(100),
	"Name" varchar(100),
	"Patronymic" varchar(100),
	"Birthday" text,
	"MobilePhone" varchar(100),
	"Phone" varchar(100)
);
CREATE TABLE dbo."Patients" (
	"ID_Persons" integer PRIMARY KEY,
	"FirstVisit" date,
	"MinStatus" integer,
	"InitialBalance" numeric(28,10),
	"ParentSNP" varchar(300),
	"CardNumber" varchar(50),
	"Comment" text,
	"ID_ArchivingReasons" integer,
	"ConformToSending" boolean,
	"SMSRejection" boolean,
	"FirstConsultation" timestamp(3),
	"FirstTreat" timestamp(3),
	"ID_StaffsChanged" integer,
	"DateTimeChanged" timestamp(3),
	"PatientNumber" varchar(50),
	"Status" integer
);
CREATE TABLE dbo."Staffs" (
	"ID_Persons" integer PRIMARY KEY,
	"Archive" boolean NOT NULL DEFAULT false
);
CREATE TABLE dbo."OwnCompanies" (
	"ID" integer PRIMARY KEY,
	"Name" varchar(200),
	"BranchName" varchar(200)
);
CREATE TABLE dbo."Armchairs" (
	"ID" integer PRIMARY KEY,
	"NameArmchair" varchar(100),
	"ID_OwnCompanies" integer,
	"Archive" boolean NOT NULL DEFAULT false
);
CREATE TABLE dbo."ReceptionCancelReasons" (
	"ID" integer PRIMARY KEY,
	"Name" varchar(200)
);
CREATE TABLE dbo."Receptions" (
	"ID" integer PRIMARY KEY,
	"ID_Patients" integer,
	"ID_StaffsReceptionAdded" integer,
	"ReceptionAdded" timestamp(3),
	"Comment" text,
	"IsNotified" boolean,
	"PatientAppeared" timestamp(3),
	"ReceptionStarted" timestamp(3),
	"ReceptionEnded" timestamp(3),
	"CheckIssued" timestamp(3),
	"PlanStart" timestamp(3),
	"PlanEnd" timestamp(3),
	"ID_Staffs" integer,
	"ID_Armchairs" integer,
	"NeedHandReminder" boolean,
	"ID_ReceptionCancelReasons" integer,
	"CancelReasonComment" text,
	"ID_StaffsReceptionCanceled" integer,
	"ReceptionCanceled" timestamp(3),
	"ID_ReceptionsTransferFrom" integer,
	"RowVersion" bytea NOT NULL,
	"ID_StaffsAdded" integer,
	"DateTimeAdded" timestamp(3),
	"ID_StaffsChanged" integer,
	"DateTimeChanged" timestamp(3)
);
CREATE INDEX ON dbo."Receptions" ("RowVersion");
CREATE INDEX ON dbo."Receptions" ("ID_Patients");
CREATE INDEX ON dbo."Receptions" ("PlanStart");
CREATE INDEX ON dbo."Patients" ("DateTimeChanged");
`

// reset drops an earlier demo clinic, or refuses a foreign dbo.
func reset(ctx context.Context, tx pgx.Tx) error {
	var hasDbo, hasHelper bool
	err := tx.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'dbo'),
		EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, HelperSchema).Scan(&hasDbo, &hasHelper)
	if err != nil {
		return fmt.Errorf("demo: inspect schemas: %w", err)
	}
	if hasDbo && !hasHelper {
		return ErrNotDemo
	}
	if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS dbo CASCADE; DROP SCHEMA IF EXISTS `+HelperSchema+` CASCADE`); err != nil {
		return fmt.Errorf("demo: drop old demo: %w", err)
	}
	return nil
}
