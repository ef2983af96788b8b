/** The output formats of the audit (and of the CLI's other commands). */
export const reportFormats = ['table', 'json', 'markdown'] as const;
export type ReportFormat = (typeof reportFormats)[number];
