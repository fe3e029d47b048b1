import { z } from 'zod';

/** The `usermap` section of cloudlet.yml. */
export const usermapSection = z
  .strictObject({
    /** The usermap YAML (people, identities, accounts, roles). */
    file: z.string().min(1).default('./config/usermap.example.yml'),
    /** The compiled index the OOD `user_map_cmd` reads. */
    index_file: z.string().min(1).default('./var/usermap/ood-index.tsv'),
    /** Sign-ins that mapped to nobody, waiting for an admin. */
    enrollments_file: z.string().min(1).default('./var/usermap/enrollments.json'),
    /** The issuer OOD authenticates against; its `sub` claim is what `user_map_cmd` receives. */
    ood_issuer: z.url().default('https://cilogon.org'),
  })
  .prefault({});

export type UsermapConfig = z.infer<typeof usermapSection>;
