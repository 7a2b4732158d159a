-- pgjobs' own schema. pgjobs.schema_migrations is created by the migration runner itself.

-- pgjobs__ping writes here: the smallest visible effect of a job, for smoke tests of a deployment.
create table pgjobs.pings (
  id bigint generated always as identity primary key,
  message text not null,
  job_id bigint,
  created_at timestamptz not null default now()
);

comment on table pgjobs.pings is 'Written by the pgjobs__ping task; proves enqueue → worker → database works.';

-- The app's Supabase roles reach nothing in pgjobs except functions granted to them one by one.
revoke all on schema pgjobs from public;
