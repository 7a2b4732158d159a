-- The ping task is opt-in and keeps nothing but its result in history: pgjobs.pings (created by
-- 0001 for the old ping task) goes, unless a deployment has rows in it, which then stay theirs.
do $$
begin
  if not exists (select 1 from pgjobs.pings) then
    drop table pgjobs.pings;
  end if;
end;
$$;
