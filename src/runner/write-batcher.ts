/**
 * Coalesces writes that arrive together into one statement: the first item is written at once
 * (on the next turn of the event loop, so items arriving in the same turn join it), and every
 * item that arrives while a write is in flight joins the next one. One statement in flight at a
 * time: under load batches grow by themselves, and an idle worker pays no delay.
 */
export class WriteBatcher<Item, Result> {
  private pending: Array<{ item: Item; resolve: (result: Result) => void; reject: (error: unknown) => void }> = [];
  private inFlight = false;
  private readonly write: (items: Item[]) => Promise<Result[]>;

  constructor(write: (items: Item[]) => Promise<Result[]>) {
    this.write = write;
  }

  push(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.inFlight) {
        this.inFlight = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        const results = await this.write(batch.map((entry) => entry.item));
        batch.forEach((entry, index) => entry.resolve(results[index]!));
      } catch (error) {
        for (const entry of batch) entry.reject(error);
      }
    }
    this.inFlight = false;
  }
}
