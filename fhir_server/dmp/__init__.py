"""The DMP's own rules: identity (INS), lifecycle, reimbursement history."""
